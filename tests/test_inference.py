"""Test-time inference: flip and multi-scale softmax averaging, sliding windows, upsampling."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from udaseg.engine.inference import parse_pair, parse_scales, predict_probs, sliding_logits
from udaseg.engine.inputs import normalize_images
from udaseg.models import build_segmentor

K = 5


class PixelModel(torch.nn.Module):
    """Logits from a 1×1 conv of each pixel: translation- and flip-equivariant, output stride 1."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(K, 3, 1, 1, generator=g))
        self.b = torch.nn.Parameter(torch.randn(K, generator=g))

    def forward(self, x):
        return SimpleNamespace(logits=F.conv2d(x, self.w, self.b))


class RampModel(PixelModel):
    """A pixel model plus a left-to-right ramp on class 0 at stride 4: not flip-equivariant."""

    def forward(self, x):
        logits = F.avg_pool2d(super().forward(x).logits, 4)
        ramp = torch.linspace(-2, 2, logits.shape[-1]).view(1, 1, 1, -1)
        return SimpleNamespace(logits=logits + F.pad(ramp.expand(1, 1, *logits.shape[-2:]), (0, 0, 0, 0, 0, K - 1)))


def _images(n=2, h=24, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


def test_plain_inference_upsamples_logits_with_align_corners_then_softmax():
    model, x = RampModel().eval(), _images()
    probs = predict_probs(model, x, "imagenet", (48, 80))
    logits = model(normalize_images(x, "imagenet")).logits
    expected = F.softmax(F.interpolate(logits, size=(48, 80), mode="bilinear", align_corners=True), 1)
    assert probs.shape == (2, K, 48, 80)
    torch.testing.assert_close(probs, expected)
    # align_corners=True: the corner pixels carry the corner logits exactly
    torch.testing.assert_close(probs[..., 0, 0], F.softmax(logits[..., 0, 0], 1))
    torch.testing.assert_close(probs[..., -1, -1], F.softmax(logits[..., -1, -1], 1))
    assert predict_probs(model, x, "imagenet").shape[-2:] == (24, 40)  # default: the input's size


def test_flip_averages_softmax_of_image_and_mirrored_image():
    model, x = RampModel().eval(), _images()
    size = (24, 40)
    norm = normalize_images(x, "imagenet")
    up = lambda t: F.interpolate(model(t).logits, size=size, mode="bilinear", align_corners=True)  # noqa: E731
    expected = (F.softmax(up(norm), 1) + F.softmax(up(norm.flip(-1)), 1).flip(-1)) / 2
    got = predict_probs(model, x, "imagenet", size, flip=True)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, predict_probs(model, x, "imagenet", size))  # the ramp makes flip matter
    torch.testing.assert_close(got.sum(1), torch.ones(2, *size))


def test_flip_is_a_no_op_for_a_flip_equivariant_model():
    model, x = PixelModel().eval(), _images()
    torch.testing.assert_close(predict_probs(model, x, "per_image", flip=True), predict_probs(model, x, "per_image"))


def test_multi_scale_is_the_mean_of_single_scales():
    model, x = RampModel().eval(), _images(h=32, w=48)
    one = predict_probs(model, x, "imagenet", (32, 48))
    torch.testing.assert_close(predict_probs(model, x, "imagenet", (32, 48), scales=(1.0,)), one)
    parts = [predict_probs(model, x, "imagenet", (32, 48), scales=(s,)) for s in (0.5, 1.0, 1.5)]
    ms = predict_probs(model, x, "imagenet", (32, 48), scales=(0.5, 1.0, 1.5))
    torch.testing.assert_close(ms, sum(parts) / 3)
    # flip and scales combine: every (scale, view) pair counts once
    both = predict_probs(model, x, "imagenet", (32, 48), scales=(0.5, 1.0), flip=True)
    pairs = [predict_probs(model, x, "imagenet", (32, 48), scales=(s,), flip=True) for s in (0.5, 1.0)]
    torch.testing.assert_close(both, sum(pairs) / 2)


def test_multi_scale_of_a_uniform_image_equals_plain():
    model = PixelModel().eval()
    x = torch.zeros(1, 3, 16, 24, dtype=torch.uint8)
    x[:, 0], x[:, 1], x[:, 2] = 30, 200, 90  # one colour: every scale sees the same pixels
    torch.testing.assert_close(predict_probs(model, x, "imagenet", scales=(0.75, 1.0, 1.25)),
                               predict_probs(model, x, "imagenet"))


def test_sliding_window_no_smaller_than_the_image_is_plain_inference():
    seg = build_segmentor("deeplabv2_resnet18", 19, multi_level=True, bn_mode="trainable").eval()
    x = _images(1, 40, 56)
    plain = predict_probs(seg, x, "imagenet", (80, 112))
    for window in ((40, 56), (64, 64), (512, 1024)):
        assert torch.equal(predict_probs(seg, x, "imagenet", (80, 112), window=window), plain)


@pytest.mark.parametrize("window,stride", [((12, 16), None), ((10, 16), (7, 5)), ((24, 8), None), ((5, 40), (5, 40))])
def test_sliding_window_of_a_per_pixel_model_equals_plain(window, stride):
    # a 1×1-conv model sees each pixel alone, so any tiling (overlapping or not) gives the same logits
    model, x = PixelModel(1).eval(), _images(2, 24, 40)
    norm = normalize_images(x, "imagenet")
    torch.testing.assert_close(sliding_logits(model, norm, window, stride), model(norm).logits)
    torch.testing.assert_close(predict_probs(model, x, "imagenet", (24, 40), window=window, stride=stride, flip=True),
                               predict_probs(model, x, "imagenet", (24, 40), flip=True))


def test_sliding_window_averages_overlapping_windows():
    class CropMean(torch.nn.Module):  # logits = the crop's mean of channel 0, the same everywhere in it
        def forward(self, x):
            return SimpleNamespace(logits=x[:, :1].mean((2, 3), keepdim=True).expand(-1, 1, *x.shape[-2:]))

    x = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 3, 1, 6).contiguous()
    # windows of 4 with stride 2 over 6 columns: [0..3] (mean 1.5), [2..5] (mean 3.5)
    out = sliding_logits(CropMean(), x, (1, 4), (1, 2))
    assert out.flatten().tolist() == [1.5, 1.5, 2.5, 2.5, 3.5, 3.5]


def test_bad_inputs_are_refused():
    model = PixelModel().eval()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        predict_probs(model, torch.zeros(3, 8, 8, dtype=torch.uint8), "imagenet")
    with pytest.raises(ValueError, match="scales must be positive"):
        predict_probs(model, _images(), "imagenet", scales=(0.0,))
    assert parse_pair("512,256", "--sliding") == (512, 256) and parse_pair("64x32", "--sliding") == (64, 32)
    assert parse_pair(None, "--sliding") is None and parse_scales("0.75,1,1.25") == [0.75, 1.0, 1.25]
    with pytest.raises(ValueError, match="--sliding must look like W,H"):
        parse_pair("512", "--sliding")
    with pytest.raises(ValueError, match="--scales"):
        parse_scales("a,b")


def test_forward_options_read_the_checkpoint_config():
    """What evaluation and `udaseg predict` both run the network with (one function: the two
    differed under bf16 when predict ignored train.channels_last)."""
    from udaseg.engine.inference import ForwardOptions, forward_options

    cfg = {"model": {"input_norm": "caffe"}, "train": {"amp": "bf16", "channels_last": True}}
    assert forward_options(cfg, "cpu") == ForwardOptions("caffe", torch.bfloat16, True)
    cfg = {"model": {"input_norm": "imagenet"}, "train": {"amp": "none", "channels_last": False}}
    assert forward_options(cfg) == ForwardOptions("imagenet", None, False)
    with pytest.raises(ValueError, match="train.amp"):
        forward_options({"model": {"input_norm": "caffe"}, "train": {"amp": "fp8", "channels_last": False}})


def test_channels_last_input_gives_the_same_float32_prediction():
    model = build_segmentor("deeplabv2_resnet18", 19, False, "trainable").eval()
    x = _images(1, 32, 48)
    torch.testing.assert_close(predict_probs(model, x, "imagenet", channels_last=True),
                               predict_probs(model, x, "imagenet"), atol=1e-5, rtol=1e-4)
