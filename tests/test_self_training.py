"""Self-training building blocks: EMA teacher, ClassMix + strong augmentation, pseudo-labels,
pixel-weighted CE, MIC block masks (udaseg.engine.teacher, udaseg.data.mixing,
udaseg.engine.self_training)."""
import colorsys
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from udaseg.data import mixing as MX
from udaseg.engine import self_training as ST
from udaseg.engine.teacher import EMATeacher, check_alpha, ema_decay


# -- EMA teacher -------------------------------------------------------------------------------

def _tiny(w: float, b: float) -> nn.Module:
    m = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    with torch.no_grad():
        m[0].weight.fill_(w)
        m[0].bias.fill_(b)
    return m


def _set(m, w, b):
    with torch.no_grad():
        m[0].weight.fill_(w)
        m[0].bias.fill_(b)


def test_ema_decay_warm_up():
    assert ema_decay(0, 0.999) == 0.0
    assert ema_decay(1, 0.999) == 0.5
    assert ema_decay(3, 0.75) == 0.75  # 1 − 1/4 = α exactly
    assert ema_decay(10**6, 0.999) == 0.999
    with pytest.raises(ValueError):
        ema_decay(-1, 0.9)


def test_ema_update_hand_computed():
    student = _tiny(1.0, -2.0)
    teacher = EMATeacher(student, alpha=0.75)
    _set(student, 3.0, 2.0)
    assert teacher.update(student, 1) == 0.5  # warm-up: min(1 − 1/2, 0.75)
    assert teacher.model[0].weight.item() == 0.5 * 1.0 + 0.5 * 3.0 == 2.0
    assert teacher.model[0].bias.item() == 0.5 * -2.0 + 0.5 * 2.0 == 0.0
    _set(student, 6.0, 4.0)
    assert teacher.update(student, 3) == 0.75  # min(1 − 1/4, 0.75)
    assert teacher.model[0].weight.item() == 0.75 * 2.0 + 0.25 * 6.0 == 3.0
    assert teacher.model[0].bias.item() == 0.75 * 0.0 + 0.25 * 4.0 == 1.0
    _set(student, 7.0, 5.0)
    assert teacher.update(student, 5) == 0.75  # capped: min(1 − 1/6, 0.75)
    assert teacher.model[0].weight.item() == 0.75 * 3.0 + 0.25 * 7.0 == 4.0
    # iteration 0 copies the student
    assert teacher.update(student, 0) == 0.0
    assert teacher.model[0].weight.item() == 7.0


def test_ema_update_matches_reference_formula_on_random_tensors():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    teacher = EMATeacher(student, alpha=0.99)
    ref = [p.detach().clone() for p in student.parameters()]
    for it in (1, 2, 50, 500):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        a = teacher.update(student, it)
        ref = [a * e + (1 - a) * p.detach() for e, p in zip(ref, student.parameters())]  # DAFormer _update_ema
        for e, r in zip(teacher.model.parameters(), ref):
            assert torch.equal(e, r)


def test_buffers_kept_or_copied_as_documented():
    student = _tiny(1.0, 0.0)
    keep, copy = EMATeacher(student, 0.9), EMATeacher(student, 0.9, buffers="copy")
    with torch.no_grad():
        student[1].running_mean.fill_(5.0)
        student[1].running_var.fill_(3.0)
    keep.update(student, 10)
    copy.update(student, 10)
    assert keep.model[1].running_mean.item() == 0.0 and keep.model[1].running_var.item() == 1.0  # references
    assert copy.model[1].running_mean.item() == 5.0 and copy.model[1].running_var.item() == 3.0
    with pytest.raises(ValueError, match="teacher_buffers"):
        EMATeacher(student, 0.9, buffers="ema")


def test_teacher_has_no_grad_and_stays_in_eval_mode():
    student = _tiny(2.0, 1.0).train()
    teacher = EMATeacher(student, 0.99)
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())  # the student is untouched
    holder = nn.Module()
    holder.teacher = teacher
    holder.train()  # a parent's train() must not reach the teacher's model
    teacher.train(True)
    assert not teacher.training and not teacher.model.training
    x = torch.randn(2, 1, 4, 4, requires_grad=True)
    y = teacher(x)
    assert not y.requires_grad
    expected = nn.functional.batch_norm(2.0 * x.detach() + 1.0, torch.zeros(1), torch.ones(1),
                                        teacher.model[1].weight, teacher.model[1].bias, False, 0.0, 1e-5)
    assert torch.allclose(y, expected)  # eval-mode BN: running statistics, not the batch's
    assert teacher.model[1].running_mean.item() == 0.0  # the forward did not update statistics


def test_batch_statistics_teacher_normalises_with_the_batch_and_keeps_its_buffers():
    """teacher_bn=batch: BN uses the labelled batch's mean and (biased) variance, as the references'
    train-mode teacher; unlike a train-mode forward, the running statistics stay untouched."""
    student = _tiny(1.0, 0.0)
    teacher = EMATeacher(student, 0.99, bn="batch")
    x = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(4, 1, 1, 1)  # mean 3, biased variance 3.5
    y = teacher(x).flatten()
    expected = (torch.tensor([1.0, 2.0, 3.0, 6.0]) - 3.0) / math.sqrt(3.5 + 1e-5)
    assert torch.allclose(y, expected, atol=1e-6)
    bn = teacher.model[1]
    assert bn.running_mean.item() == 0.0 and bn.running_var.item() == 1.0 and bn.num_batches_tracked.item() == 0
    assert not bn.training and bn.track_running_stats  # restored after the forward
    assert torch.allclose(EMATeacher(student, 0.99)(x).flatten(), x.flatten() / math.sqrt(1 + 1e-5))  # eval


def test_batch_statistics_teacher_equals_a_train_mode_deeplab_forward():
    from udaseg.models import build_segmentor
    torch.manual_seed(0)
    student = build_segmentor("deeplabv2_resnet18", 4, multi_level=True, bn_mode="trainable")
    teacher = EMATeacher(student, 0.999, bn="batch")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x = torch.randn(2, 3, 33, 33)
    with torch.no_grad():
        reference = copy.deepcopy(student).train()(x)  # the references' train-mode teacher
    out = teacher(x)
    assert torch.allclose(out.logits, reference.logits, atol=1e-5)
    assert torch.allclose(out.aux_logits, reference.aux_logits, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # nothing updated
    with pytest.raises(ValueError, match="teacher_bn"):
        EMATeacher(student, 0.9, bn="train")
    frozen = build_segmentor("deeplabv2_resnet18", 4, multi_level=False, bn_mode="frozen")
    with pytest.raises(ValueError, match="teacher_bn is batch, but the model's BN layers are frozen"):
        EMATeacher(frozen, 0.9, bn="batch")


@pytest.mark.parametrize("value,bn_mode,expected", [
    ("auto", "frozen", "eval"), ("auto", "trainable", "batch"), ("auto", "frozen_affine", "batch"),
    ("auto", "sync", "batch"), ("eval", "trainable", "eval"), ("batch", "trainable", "batch")])
def test_teacher_bn_auto_is_the_references_train_mode_teacher(value, bn_mode, expected):
    from udaseg.engine.mean_teacher import resolve_teacher_bn
    assert resolve_teacher_bn(value, bn_mode) == expected


def test_state_dict_round_trip_resumes_exactly():
    torch.manual_seed(1)
    student = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    a = EMATeacher(student, 0.999)
    for it in (1, 2, 3):
        with torch.no_grad():
            for p in student.parameters():
                p.mul_(1.1).add_(0.01)
        a.update(student, it)
    b = EMATeacher(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), 0.999)
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    a.update(student, 4)
    b.update(student, 4)
    for va, vb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(va, vb)


def test_teacher_of_a_frozen_bn_deeplab():
    from udaseg.models import build_segmentor
    student = build_segmentor("deeplabv2_resnet18", 4, multi_level=False, bn_mode="frozen").train()
    teacher = EMATeacher(student, 0.999)
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        student_eval = student.eval()(x).logits
    student.train()
    assert torch.equal(teacher(x).logits, student_eval)


@pytest.mark.parametrize("alpha", [1.0, -0.1, 1.5, float("nan"), "x", None])
def test_alpha_validation(alpha):
    with pytest.raises(ValueError, match=r"self_training\.alpha"):
        check_alpha(alpha)
    with pytest.raises(ValueError, match=r"self_training\.alpha"):
        EMATeacher(_tiny(1, 0), alpha)


# -- ClassMix ----------------------------------------------------------------------------------

def _batch(n=3, h=12, w=16, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    tgt = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    lab = torch.randint(0, k, (n, h, w), generator=g)
    lab[:, :2] = 255  # an ignored band
    pl = torch.randint(0, k, (n, h, w), generator=g)
    return src, lab, tgt, pl


def test_every_mixed_pixel_keeps_the_label_of_its_image():
    src, lab, tgt, pl = _batch()
    pw = torch.full(pl.shape, 0.25)
    out = MX.class_mix(src, lab, tgt, pl, pw, torch.Generator().manual_seed(3))
    m = out.masks
    assert m.dtype == torch.bool and m.shape == lab.shape
    assert out.images.dtype == torch.uint8
    m3 = m[:, None].expand_as(src)
    assert torch.equal(out.images[m3], src[m3]) and torch.equal(out.images[~m3], tgt[~m3])
    assert torch.equal(out.labels[m], lab[m]) and torch.equal(out.labels[~m], pl[~m])
    assert torch.equal(out.weights[m], torch.ones(int(m.sum())))
    assert torch.equal(out.weights[~m], torch.full((int((~m).sum()),), 0.25))
    # float images in the uint8 range mix the same way
    outf = MX.class_mix(src.float(), lab, tgt.float(), pl, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(outf.images, out.images.float()) and torch.equal(outf.masks, m)


@pytest.mark.parametrize("n_classes", [1, 2, 3, 4, 5, 7])
def test_half_the_classes_rounded_up_as_dacs(n_classes):
    lab = torch.arange(n_classes).repeat_interleave(4).view(1, 1, -1).expand(1, 3, -1).contiguous()
    img = torch.zeros(1, 3, *lab.shape[1:], dtype=torch.uint8)
    for seed in range(5):
        out = MX.class_mix(img, lab, img, torch.zeros_like(lab), None, torch.Generator().manual_seed(seed))
        chosen = out.classes[0]
        assert chosen.numel() == int((n_classes + n_classes % 2) / 2)  # DACS trainUDA.py
        assert chosen.unique().numel() == chosen.numel()  # without replacement
        assert torch.equal(out.masks[0], torch.isin(lab[0], chosen))  # exactly those classes' pixels


def test_ignore_label_counts_as_a_class_unless_excluded():
    lab = torch.tensor([[[0, 1, 255, 255]]])
    counts = set()
    for seed in range(20):
        c = MX.choose_classes(lab[0], torch.Generator().manual_seed(seed))
        assert c.numel() == 2  # 3 values (255 included, as DACS/DAFormer) → 2
        counts.add(tuple(sorted(c.tolist())))
        c2 = MX.choose_classes(lab[0], torch.Generator().manual_seed(seed), include_ignore=False)
        assert c2.numel() == 1 and 255 not in c2.tolist()
    assert any(255 in s for s in counts)


def test_class_mix_is_deterministic_per_generator_seed():
    src, lab, tgt, pl = _batch(seed=5)
    a = MX.class_mix(src, lab, tgt, pl, None, torch.Generator().manual_seed(11))
    b = MX.class_mix(src, lab, tgt, pl, None, torch.Generator().manual_seed(11))
    assert torch.equal(a.masks, b.masks) and torch.equal(a.images, b.images)
    masks = {MX.class_mix(src, lab, tgt, pl, None, torch.Generator().manual_seed(s)).masks.numpy().tobytes()
             for s in range(6)}
    assert len(masks) > 1
    # resumable: a generator restored from a saved state continues identically
    g = torch.Generator().manual_seed(2)
    MX.class_mix(src, lab, tgt, pl, None, g)
    state = g.get_state()
    nxt = MX.class_mix(src, lab, tgt, pl, None, g)
    g2 = torch.Generator()
    g2.set_state(state)
    assert torch.equal(MX.class_mix(src, lab, tgt, pl, None, g2).masks, nxt.masks)


def test_class_mix_shape_errors():
    src, lab, tgt, pl = _batch()
    with pytest.raises(ValueError, match="pseudo_labels"):
        MX.class_mix(src, lab, tgt, pl[:, :-1], None, torch.Generator())
    with pytest.raises(ValueError, match="images"):
        MX.class_mix(src, lab, tgt[:2], pl, None, torch.Generator())


# -- strong augmentation -----------------------------------------------------------------------

def test_strong_transform_identity_when_probabilities_are_zero():
    src, *_ = _batch()
    for x in (src, src.float()):
        y = MX.strong_transform(x, torch.Generator().manual_seed(0), jitter_prob=0.0, blur_prob=0.0)
        assert y.dtype == x.dtype and torch.equal(y, x)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("jitter,blur", [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_strong_transform_keeps_shape_dtype_range_and_is_seeded(dtype, jitter, blur):
    x = _batch(n=2, h=40, w=56)[0].to(dtype)
    kw = dict(jitter_prob=jitter, blur_prob=blur)
    y = MX.strong_transform(x, torch.Generator().manual_seed(4), **kw)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0 and float(y.max()) <= 255
    assert not torch.equal(y, x)
    assert torch.equal(y, MX.strong_transform(x, torch.Generator().manual_seed(4), **kw))


def test_blur_kernel_size_is_the_reference_formula():
    for length in (5, 10, 11, 20, 33, 64, 512, 720, 1024, 1280):
        ref = int(np.floor(np.ceil(0.1 * length) - 0.5 + np.ceil(0.1 * length) % 2))  # dacs_transforms.py
        assert MX.blur_kernel_size(length) == max(1, ref)
        assert MX.blur_kernel_size(length) % 2 == 1
    assert MX.blur_kernel_size(512) == 51 and MX.blur_kernel_size(1024) == 103


def test_gaussian_blur_keeps_constant_images_and_matches_a_direct_convolution():
    x = torch.full((3, 30, 40), 0.4)
    assert torch.allclose(MX.gaussian_blur(x, 1.0), x, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 30, 40, generator=g)
    sigma = 0.8
    ky, kx = MX.blur_kernel_size(30), MX.blur_kernel_size(40)
    gy = torch.exp(-((torch.arange(ky) - ky // 2).float() ** 2) / (2 * sigma**2))
    gx = torch.exp(-((torch.arange(kx) - kx // 2).float() ** 2) / (2 * sigma**2))
    k2 = torch.outer(gy / gy.sum(), gx / gx.sum())
    ref = F.conv2d(F.pad(x[:, None], (kx // 2, kx // 2, ky // 2, ky // 2), mode="reflect"), k2[None, None])[:, 0]
    assert torch.allclose(MX.gaussian_blur(x, sigma), ref, atol=1e-5)


def test_hsv_round_trip_and_colorsys():
    x = torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(1))
    x[:, 0, 0] = 0.5  # grey: hue 0, saturation 0
    hsv = MX._rgb_to_hsv(x)
    assert torch.allclose(MX._hsv_to_rgb(hsv), x, atol=1e-5)
    for i, j in ((0, 0), (3, 4), (6, 8)):
        h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
        assert math.isclose(hsv[0, i, j].item(), 2 * math.pi * h, abs_tol=1e-4)
        assert math.isclose(hsv[1, i, j].item(), s, abs_tol=1e-5)
        assert math.isclose(hsv[2, i, j].item(), v, abs_tol=1e-6)


def test_color_jitter_with_zero_strength_is_identity():
    x = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(MX.color_jitter(x, 0.0, torch.Generator().manual_seed(0)), x, atol=1e-5)


# -- pseudo-labels -----------------------------------------------------------------------------

def test_pseudo_label_weight_hand_made():
    # 2 images, 2 classes, 2×2 pixels; top probabilities: image 0 → .99 .97 .98 .6, image 1 → .55 .99 .9 .9
    top = torch.tensor([[[0.99, 0.97], [0.98, 0.6]], [[0.55, 0.99], [0.9, 0.9]]], dtype=torch.float64)
    cls = torch.tensor([[[0, 1], [1, 0]], [[1, 0], [0, 1]]])
    p = torch.where(cls[:, None] == torch.arange(2).view(1, 2, 1, 1), top[:, None], 1 - top[:, None])
    logits = torch.log(p)
    labels, weight = ST.pseudo_labels(logits, 0.968)
    assert torch.equal(labels, cls)
    # confident (q ≥ .968): .99 .97 .98 | .99 → 4 of 8 pixels, one share for the whole batch
    assert weight.shape == (2, 2, 2) and weight.dtype == torch.float32
    assert torch.equal(weight, torch.full((2, 2, 2), 4 / 8))
    _, w_img = ST.pseudo_labels(logits, 0.968, per_image=True)
    assert torch.equal(w_img[0], torch.full((2, 2), 3 / 4)) and torch.equal(w_img[1], torch.full((2, 2), 1 / 4))
    _, w_crop = ST.pseudo_labels(logits, 0.968, ignore_top=1)
    assert torch.equal(w_crop[:, 0], torch.zeros(2, 2)) and torch.equal(w_crop[:, 1], torch.full((2, 2), 0.5))
    _, w_bot = ST.pseudo_labels(logits, 0.968, ignore_bottom=1)
    assert torch.equal(w_bot[:, 1], torch.zeros(2, 2)) and torch.equal(w_bot[:, 0], torch.full((2, 2), 0.5))
    _, w1 = ST.pseudo_labels(logits, 1.0)
    assert torch.equal(w1, torch.zeros(2, 2, 2))


def test_pseudo_label_threshold_is_inclusive():
    # equal logits over 2 classes: q = 0.5 exactly; DAFormer/DACS use ge, so τ = 0.5 counts it
    logits = torch.zeros(1, 2, 3, 3)
    assert torch.equal(ST.pseudo_labels(logits, 0.5)[1], torch.ones(1, 3, 3))
    assert torch.equal(ST.pseudo_labels(logits, 0.5001)[1], torch.zeros(1, 3, 3))


def test_pseudo_labels_upsample_to_size():
    logits = torch.randn(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    labels, weight = ST.pseudo_labels(logits, 0.5, size=(16, 20))
    up = F.interpolate(logits, size=(16, 20), mode="bilinear", align_corners=True)
    assert labels.shape == (1, 16, 20) and torch.equal(labels, up.argmax(1))


@pytest.mark.parametrize("tau", [0.0, -0.5, 1.01, float("nan"), "a"])
def test_tau_validation(tau):
    with pytest.raises(ValueError, match=r"self_training\.tau"):
        ST.pseudo_labels(torch.zeros(1, 2, 2, 2), tau)


def test_defaults_are_the_references():
    assert ST.DEFAULT_TAU == 0.968 and ST.DEFAULT_IGNORE_TOP == 0 and ST.DEFAULT_IGNORE_BOTTOM == 0
    assert (ST.MIC_BLOCK_SIZE, ST.MIC_MASK_RATIO, ST.MIC_LAMBDA) == (64, 0.7, 1.0)
    assert MX.JITTER_STRENGTH == 0.2 and math.isclose(MX.JITTER_PROB, 0.8) and MX.BLUR_PROB == 0.5
    assert MX.BLUR_SIGMA == (0.15, 1.15)
    from udaseg.engine import teacher as T
    assert T.DEFAULT_ALPHA == 0.999 and T.DACS_ALPHA == 0.99


# -- pixel-weighted cross-entropy --------------------------------------------------------------

def test_pixel_weighted_ce_hand_computed_2x2():
    # two classes; logits (0, 0) everywhere except pixel (0, 1) = (ln 3, 0)
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0, 0, 1] = math.log(3.0)
    labels = torch.tensor([[[0, 0], [1, 255]]])
    weight = torch.tensor([[[1.0, 0.5], [2.0, 7.0]]])
    # CE: (0,0) ln 2; (0,1) −ln(3/4); (1,0) ln 2; (1,1) ignored → 0 but counted in the mean of 4
    expected = (1.0 * math.log(2) + 0.5 * -math.log(0.75) + 2.0 * math.log(2) + 0.0) / 4
    got = ST.pixel_weighted_cross_entropy(logits, labels, weight)
    assert math.isclose(got.item(), expected, rel_tol=1e-6)
    unweighted = (2 * math.log(2) - math.log(0.75)) / 4
    assert math.isclose(ST.pixel_weighted_cross_entropy(logits, labels).item(), unweighted, rel_tol=1e-6)
    assert math.isclose(ST.pixel_weighted_cross_entropy(logits, labels, 0.5).item(), unweighted / 2, rel_tol=1e-6)


def test_pixel_weighted_ce_upsamples_like_udaseg():
    logits = torch.randn(2, 3, 3, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    labels = torch.randint(0, 3, (2, 9, 10), generator=torch.Generator().manual_seed(1))
    up = F.interpolate(logits, size=(9, 10), mode="bilinear", align_corners=True)
    ref = F.cross_entropy(up, labels)
    got = ST.pixel_weighted_cross_entropy(logits, labels, None)
    assert torch.allclose(got, ref)
    got.backward()
    assert logits.grad is not None


# -- MIC block masks ---------------------------------------------------------------------------

def test_block_mask_structure_is_exact():
    mask = ST.block_mask((3, 3, 256, 320), patch=64, ratio=0.7, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 1, 256, 320) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    blocks = mask.view(3, 1, 4, 64, 5, 64)
    assert torch.equal(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks))  # constant 64×64 blocks
    # the grid is the draw thresholded at the ratio (MIC: torch.rand(...) > mask_ratio)
    grid = torch.rand((3, 1, 4, 5), generator=torch.Generator().manual_seed(0)) > 0.7
    assert torch.equal(blocks[:, :, :, 0, :, 0], grid.float())


def test_block_mask_kept_fraction_within_binomial_tolerance():
    ratio, n_img, gh, gw = 0.7, 8, 40, 50  # 16 000 blocks
    mask = ST.block_mask((n_img, 3, gh * 8, gw * 8), patch=8, ratio=ratio, generator=torch.Generator().manual_seed(7))
    kept = mask[:, :, ::8, ::8].sum().item()
    n_blocks = n_img * gh * gw
    p = 1 - ratio
    assert abs(kept - n_blocks * p) <= 5 * math.sqrt(n_blocks * p * (1 - p))
    assert math.isclose(mask.double().mean().item(), kept / n_blocks, rel_tol=1e-12)  # pixel share = block share


def test_block_mask_rounding_and_determinism():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = ST.block_mask((2, 3, 720, 1280), generator=g())
    assert torch.equal(a, ST.block_mask((2, 720, 1280), generator=g()))
    assert not torch.equal(a, ST.block_mask((2, 3, 720, 1280), generator=torch.Generator().manual_seed(4)))
    # round(720 / 64) = 11 rows of blocks, nearest-upsampled (MIC: resize(..., mode='nearest'))
    grid = (torch.rand((2, 1, 11, 20), generator=g()) > 0.7).float()
    assert torch.equal(a, F.interpolate(grid, size=(720, 1280), mode="nearest"))
    tiny = ST.block_mask((1, 3, 20, 20), patch=64, generator=g())  # round(0.31) = 0 → one block
    assert tiny.shape == (1, 1, 20, 20) and tiny.unique().numel() == 1
    img = torch.ones(2, 3, 720, 1280)
    masked = ST.apply_block_mask(img, a)
    assert torch.equal(masked, a.expand_as(img))


@pytest.mark.parametrize("ratio", [1.0, -0.1, 2, float("nan"), "x"])
def test_mask_ratio_validation(ratio):
    with pytest.raises(ValueError, match=r"self_training\.mic\.ratio"):
        ST.block_mask((1, 3, 64, 64), ratio=ratio, generator=torch.Generator())


def test_ratio_zero_keeps_everything():
    m = ST.block_mask((2, 3, 128, 128), ratio=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, torch.ones_like(m))  # rand ∈ [0, 1), ratio 0: all but an exact 0.0 draw


def test_step_generator_is_a_function_of_seed_iteration_stream():
    a = torch.rand(4, generator=ST.step_generator(0, 10, 1))
    assert torch.equal(a, torch.rand(4, generator=ST.step_generator(0, 10, 1)))
    assert not torch.equal(a, torch.rand(4, generator=ST.step_generator(0, 11, 1)))
    assert not torch.equal(a, torch.rand(4, generator=ST.step_generator(0, 10, 2)))
    assert not torch.equal(a, torch.rand(4, generator=ST.step_generator(1, 10, 1)))
