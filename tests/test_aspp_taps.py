"""The tap-by-tap ASPP equals DeepLab-V2's sum of four dilated convolutions: forward and every
gradient in float32, and at least as accurate under bf16 autocast."""
import pytest
import torch

from udaseg.models.aspp_taps import tap_shifts
from udaseg.models.deeplabv2 import ASPPClassifier


def _pair(c_in, k=19):
    torch.manual_seed(0)
    ref = ASPPClassifier(c_in, k, impl="dilated_conv")
    for conv in ref.branches:  # non-zero biases, so their sum is checked too
        torch.nn.init.normal_(conv.bias, 0.0, 0.1)
    taps = ASPPClassifier(c_in, k, impl="taps")
    taps.load_state_dict(ref.state_dict())
    return ref, taps


def test_taps_reading_only_padding_are_skipped():
    # 13×25 map (96×192 demo input at stride 8): rate 6 and 12 keep all 9 taps; rate 18 loses
    # dy = ±18 (≥ 13 rows) → 3 taps; rate 24 loses dy = ±24 but keeps dx = ±24 (< 25) → 3 taps
    shifts = tap_shifts(13, 25, (6, 12, 18, 24))
    assert len(shifts) == 9 + 9 + 3 + 3
    assert {(dy, dx) for b, i, j, dy, dx in shifts if b == 3} == {(0, -24), (0, 0), (0, 24)}
    assert len({(dy, dx) for *_, dy, dx in shifts}) == 24 - 3  # four centre taps merge into one
    assert len(tap_shifts(5, 5, (6, 12))) == 2  # only the centres read the map
    assert len(tap_shifts(100, 100, (6, 12, 18, 24))) == 36


@pytest.mark.parametrize("shape", [(2, 24, 13, 25), (1, 16, 5, 7), (1, 8, 40, 52)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_forward_and_gradients_equal_the_dilated_convolutions(shape, channels_last):
    ref, taps = _pair(shape[1])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ref.to(memory_format=fmt), taps.to(memory_format=fmt)
    x = torch.randn(shape).contiguous(memory_format=fmt)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = ref(xa), taps(xb)
    assert yb.shape == ya.shape and yb.dtype == torch.float32
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5 * float(ya.detach().abs().max()))
    g = torch.randn_like(ya)
    ga = torch.autograd.grad(ya, [xa, *ref.parameters()], g)
    gb = torch.autograd.grad(yb, [xb, *taps.parameters()], g)
    for name, a, b in zip(["x"] + [n for n, _ in ref.named_parameters()], ga, gb):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * float(a.abs().max()), msg=name)
    # a tap that reads only padding gets exactly the zero gradient the convolution gives it
    if shape[2] <= 13:
        w24 = dict(zip([n for n, _ in taps.named_parameters()], gb[1:]))["branches.3.weight"]
        assert torch.count_nonzero(w24[:, :, 0, :]) == 0 and torch.count_nonzero(w24[:, :, 2, :]) == 0


def test_bf16_autocast_is_no_less_accurate_than_the_convolutions():
    ref, taps = _pair(256)
    x = torch.randn(2, 256, 13, 25).relu()
    exact = ref(x).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ya, yb = ref(x).detach(), taps(x).detach()
    err = lambda y: float((y.float() - exact).abs().mean() / exact.abs().mean())
    # both are dominated by bf16 inputs and weights (~0.3%); the taps' float32 sum avoids the
    # convolution's final bf16 rounding
    assert err(ya) > 1e-3 and err(yb) <= 1.1 * err(ya)


def test_unknown_implementation_is_named():
    with pytest.raises(ValueError, match=r"unknown ASPP implementation 'fft' \(model\.aspp_impl\); valid: taps, dilated_conv"):
        ASPPClassifier(8, 19, impl="fft")


def test_float64_stays_float64_and_matches_exactly_enough():
    ref, taps = _pair(8)
    ref.double(), taps.double()
    x = torch.randn(1, 8, 9, 11, dtype=torch.float64)
    y = taps(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, ref(x), rtol=1e-12, atol=1e-12)
