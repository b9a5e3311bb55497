"""Every loss on small tensors whose value is worked out by hand in the comments."""
import math

import pytest
import torch
import torch.nn.functional as F

from udaseg import losses as Lo
from udaseg.models import build_discriminator


def test_entropy_uniform_one_hot_and_a_hand_value():
    uniform = torch.full((2, 19, 3, 4), 1 / 19)
    assert torch.allclose(Lo.entropy_map(uniform), torch.ones(2, 3, 4))
    one_hot = F.one_hot(torch.tensor([[[3, 0]]]), 19).permute(0, 3, 1, 2).float()
    assert Lo.entropy_map(one_hot).tolist() == [[[0.0, 0.0]]]
    # K = 2, p = (1/4, 3/4): −(¼ ln ¼ + ¾ ln ¾) / ln 2 = 0.8112781
    p = torch.tensor([0.25, 0.75]).view(1, 2, 1, 1)
    assert Lo.entropy_map(p).item() == pytest.approx(0.8112781, abs=1e-6)
    # loss is the pixel mean: (1 + 0.8112781) / 2 over a 2-pixel map
    p2 = torch.tensor([[0.5, 0.25], [0.5, 0.75]]).view(1, 2, 1, 2)
    assert Lo.entropy_loss(p2).item() == pytest.approx((1 + 0.8112781) / 2, abs=1e-6)
    # the self-information map sums over classes to the entropy map
    assert torch.allclose(Lo.self_information_map(p2).sum(1), Lo.entropy_map(p2))
    assert Lo.self_information_map(p2)[0, :, 0, 1].tolist() == pytest.approx(
        [-0.25 * math.log(0.25) / math.log(2), -0.75 * math.log(0.75) / math.log(2)])


def test_entropy_gradient_is_finite_at_zero_probability():
    p = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).requires_grad_()
    Lo.entropy_loss(p).backward()
    assert torch.isfinite(p.grad).all()
    logits = torch.tensor([200.0, -200.0, 0.0]).view(1, 3, 1, 1).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = Lo.entropy_loss(torch.softmax(logits, 1))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_soft_label_ce_equals_ce_for_one_hot_and_hand_value():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3, 3)
    target = torch.randint(0, 5, (2, 3, 3))
    one_hot = F.one_hot(target, 5).permute(0, 3, 1, 2).float()
    assert Lo.soft_label_cross_entropy(logits, one_hot).item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    # softmax of logits (ln1, ln2, ln3, ln4) is (.1, .2, .3, .4); q = (.6, .4, 0, 0):
    # −(.6 ln .1 + .4 ln .2) = 2.0253262
    lg = torch.log(torch.tensor([1.0, 2, 3, 4])).view(1, 4, 1, 1)
    q = torch.tensor([0.6, 0.4, 0, 0]).view(1, 4, 1, 1)
    assert Lo.soft_label_cross_entropy(lg, q).item() == pytest.approx(2.0253262, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(1, 4, 1, 1\).*\(1, 3, 1, 1\)"):
        Lo.soft_label_cross_entropy(lg, q[:, :3])


def test_class_probabilities_temperature_and_clip():
    # logits (3.6, 0) / 1.8 = (2, 0) → (e²/(e²+1), 1/(e²+1)) = (.8807971, .1192029): no clip
    a = Lo.class_probabilities(torch.tensor([3.6, 0.0]).view(1, 2, 1, 1))
    assert a.flatten().tolist() == pytest.approx([0.8807971, 0.1192029], abs=1e-6)
    # (9, 0) / 1.8 = (5, 0) → (.9933071, .0066929); clipped to .9, not renormalised
    b = Lo.class_probabilities(torch.tensor([9.0, 0.0]).view(1, 2, 1, 1).requires_grad_())
    assert b.flatten().tolist() == pytest.approx([0.9, 0.0066929], abs=1e-6)
    assert not b.requires_grad
    assert Lo.class_probabilities(torch.zeros(1, 2, 3, 3), size=(6, 6)).shape == (1, 2, 6, 6)


def test_domain_encoding_layout():
    a = torch.tensor([0.7, 0.3]).view(1, 2, 1, 1)
    assert Lo.domain_encoding(a, "source").flatten().tolist() == pytest.approx([0.7, 0.3, 0, 0])
    assert Lo.domain_encoding(a, "target").flatten().tolist() == pytest.approx([0, 0, 0.7, 0.3])
    with pytest.raises(ValueError, match="'tgt'"):
        Lo.domain_encoding(a, "tgt")


def _eq23_example():
    """K = 2, a 2×2 map. D's softmax is (.1, .2, .3, .4) at every pixel; the class probabilities
    a per pixel are (.6,.4), (.9,.1), (.5,.5), (.2,.8)."""
    d = torch.log(torch.tensor([1.0, 2, 3, 4])).view(1, 4, 1, 1).expand(1, 4, 2, 2).clone()
    a = torch.tensor([[[0.6, 0.9], [0.5, 0.2]], [[0.4, 0.1], [0.5, 0.8]]]).unsqueeze(0)
    return d, a


def test_paper_eq2_and_eq3_on_a_2x2_example():
    d, a = _eq23_example()
    ln = math.log
    # as source ([a;0]): per pixel a0·ln10 + a1·ln5 → 2.0253262, 2.2332696, 1.9560115, 1.7480681
    src = [a0 * ln(10) + a1 * ln(5) for a0, a1 in [(.6, .4), (.9, .1), (.5, .5), (.2, .8)]]
    # as target ([0;a]): per pixel a0·ln(10/3) + a1·ln(10/4)
    tgt = [a0 * ln(10 / 3) + a1 * ln(2.5) for a0, a1 in [(.6, .4), (.9, .1), (.5, .5), (.2, .8)]]
    assert sum(src) / 4 == pytest.approx(1.9906689, abs=1e-6)
    assert sum(tgt) / 4 == pytest.approx(1.0745162, abs=1e-6)
    # eq. 3: target pixels with the source encoding
    assert Lo.fine_grained_adversarial_loss(d, a).item() == pytest.approx(1.9906689, abs=1e-6)
    # eq. 2 with FADA's 0.5 per domain, D seeing these logits on both domains
    assert Lo.fine_grained_discriminator_loss(d, d, a, a).item() == pytest.approx(0.5 * (1.9906689 + 1.0745162), abs=1e-6)


def test_binary_adversarial_loss_hand_values():
    z = torch.zeros(1, 1, 2, 2)
    assert Lo.binary_adversarial_loss(z, "source").item() == pytest.approx(math.log(2))
    two = torch.full((1, 1, 1, 1), 2.0)
    assert Lo.binary_adversarial_loss(two, "source").item() == pytest.approx(math.log(1 + math.e ** 2))  # softplus(2)
    assert Lo.binary_adversarial_loss(two, "target").item() == pytest.approx(math.log(1 + math.e ** -2))
    with pytest.raises(ValueError):
        Lo.binary_adversarial_loss(two, "both")


def test_segmentation_loss_upsamples_ignores_and_never_nans():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[0, :8] = 255
    assert Lo.segmentation_loss(torch.zeros(1, 19, 4, 4), labels).item() == pytest.approx(math.log(19))
    logits = torch.zeros(1, 19, 4, 4, requires_grad=True)
    loss = Lo.segmentation_loss(logits, torch.full((1, 16, 16), 255))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_gradients_reach_the_right_modules():
    """L_adv reaches the feature extractor, not D (D frozen during the G step); L_D on detached
    features reaches D, not the feature extractor."""
    torch.manual_seed(0)
    feat = torch.nn.Conv2d(3, 8, 3, padding=1)
    cls = torch.nn.Conv2d(8, 2, 1)
    disc = build_discriminator("fine_grained", in_channels=8, num_classes=2)
    x_s, x_t = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    f_s, f_t = feat(x_s), feat(x_t)
    p_s, p_t = Lo.class_probabilities(cls(f_s)), Lo.class_probabilities(cls(f_t))

    disc.requires_grad_(False)
    Lo.fine_grained_adversarial_loss(disc(f_t), p_t).backward()
    assert feat.weight.grad is not None and feat.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())
    assert cls.weight.grad is None  # the soft label is detached: no gradient through a

    feat.zero_grad()
    disc.requires_grad_(True)
    Lo.fine_grained_discriminator_loss(disc(f_s.detach()), disc(f_t.detach()), p_s, p_t).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
    assert feat.weight.grad is None or feat.weight.grad.abs().sum() == 0
