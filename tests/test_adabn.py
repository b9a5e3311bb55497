import torch
from torch import nn

from udaseg.engine.adabn import adapt_batchnorm
from udaseg.models import SegmentorOutput


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        f = self.bn(self.conv(x))
        return SegmentorOutput(f, None, f)


def test_statistics_are_the_average_over_the_target_images_and_weights_stay():
    torch.manual_seed(0)
    model = Tiny()
    images = [torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8) for _ in range(3)]
    adapted = adapt_batchnorm(model, [{"image": x} for x in images], "per_image", "cpu")
    # by hand: the conv outputs' per-channel mean over all batches (equal sizes: mean of means)
    from udaseg.engine.inputs import normalize_images

    feats = [model.conv(normalize_images(x, "per_image")) for x in images]
    expected = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    assert torch.allclose(adapted.bn.running_mean, expected, atol=1e-6)
    assert torch.equal(adapted.conv.weight, model.conv.weight)
    assert torch.equal(model.bn.running_mean, torch.zeros(2))  # the original is untouched
    assert not adapted.training and adapted.bn.momentum == 0.1
