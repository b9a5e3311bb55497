import numpy as np
import pytest

from udaseg.data import transforms as T


def _pair(h=4, w=6):
    label = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    image = np.stack([label, label + 100, label + 200], -1).astype(np.uint8)
    return image, label


class _Always:
    """A stand-in rng whose draws are fixed, to hit each branch deterministically."""

    def __init__(self, random=0.0, integers=0, uniform=None):
        self._r, self._i, self._u = random, integers, uniform

    def random(self):
        return self._r

    def integers(self, low, high):
        return min(self._i, high - 1)

    def uniform(self, low, high):
        return self._u if self._u is not None else low

    def permutation(self, n):
        return np.arange(n)


def test_hflip_flips_both_exactly():
    image, label = _pair()
    im2, lab2 = T.RandomHorizontalFlip(0.5)(image, label, _Always(random=0.1))
    assert (lab2 == label[:, ::-1]).all() and (im2[..., 0] == lab2).all()
    im3, lab3 = T.RandomHorizontalFlip(0.5)(image, label, _Always(random=0.9))
    assert (lab3 == label).all()


def test_crop_window_and_padding():
    image, label = _pair()
    im2, lab2 = T.RandomCrop((3, 2))(image, label, _Always(integers=1))
    assert lab2.tolist() == [[7, 8, 9], [13, 14, 15]] and (im2[..., 1] == lab2 + 100).all()
    im3, lab3 = T.RandomCrop((8, 5))(image, label, _Always(integers=0))
    assert lab3.shape == (5, 8) and (lab3[4] == 255).all() and (lab3[:, 6:] == 255).all()
    assert (im3[4] == 0).all() and (lab3[:4, :6] == label).all()


class _Scripted:
    """A stand-in rng whose ``integers`` draws come from a list, to follow each window drawn."""

    def __init__(self, draws):
        self.draws, self.calls = list(draws), 0

    def integers(self, low, high):
        self.calls += 1
        value = self.draws.pop(0)
        assert low <= value < high
        return value


def _stripes():
    """4×8 label: columns 0-3 all class 1 (a window there is one class), columns 4-7 class 2 in rows
    0-2 and class 3 in row 3, column 7 ignore (255)."""
    label = np.ones((4, 8), np.uint8)
    label[:, 4:] = 2
    label[3, 4:] = 3
    label[:, 7] = 255
    return np.zeros((4, 8, 3), np.uint8), label


def test_cat_max_ratio_redraws_a_window_dominated_by_one_class():
    image, label = _stripes()
    crop = T.RandomCrop((4, 4), cat_max_ratio=0.75)
    # x=0: class 1 only -> redrawn; x=4: classes 2 (9 px) and 3 (3 px) of 12 labelled = 0.75, not
    # below 0.75 -> redrawn; x=3: class 1 4 px, 2 9 px, 3 3 px of 16: 9/16 < 0.75 -> taken
    rng = _Scripted([0, 0, 0, 4, 0, 3])
    _, out = crop(image, label, rng)
    assert rng.calls == 6 and out.tolist() == label[:, 3:7].tolist()


def test_cat_max_ratio_takes_an_eleventh_window_unchecked_after_ten_misses():
    image, label = _stripes()
    rng = _Scripted([0, 0] * 10 + [0, 1])  # ten one-class windows, then the 11th (x=1): also one class
    _, out = T.RandomCrop((4, 4), cat_max_ratio=0.75)(image, label, rng)
    assert rng.calls == 22 and out.tolist() == label[:, 1:5].tolist()


def test_cat_max_ratio_of_one_draws_one_window_as_before():
    image, label = _stripes()
    rng = _Scripted([0, 0])
    _, out = T.RandomCrop((4, 4))(image, label, rng)
    assert rng.calls == 2 and out.tolist() == label[:, :4].tolist()


def test_cat_max_ratio_needs_labels_and_a_crop():
    image, _ = _stripes()
    with pytest.raises(ValueError, match="'cat_max_ratio' .*chooses crops by their labels, and these images have none"):
        T.RandomCrop((4, 4), cat_max_ratio=0.75)(image, None, _Scripted([0, 0]))
    assert T.RandomCrop((4, 4))(image, None, _Scripted([0, 0]))[1] is None
    with pytest.raises(ValueError, match="'cat_max_ratio' is 0.75: it needs a 'crop'"):
        T.build_transforms({"cat_max_ratio": 0.75})
    with pytest.raises(ValueError, match="'cat_max_ratio' is 1.5"):
        T.build_transforms({"crop": [4, 4], "cat_max_ratio": 1.5})
    assert T.build_transforms({"crop": [4, 4], "cat_max_ratio": 0.75}).transforms[0].cat_max_ratio == 0.75


def test_resize_label_nearest_keeps_ids():
    image, label = _pair(4, 6)
    im2, lab2 = T.Resize((12, 8))(image, label, None)
    assert im2.shape == (8, 12, 3) and lab2.shape == (8, 12)
    assert lab2.tolist() == np.repeat(np.repeat(label, 2, 0), 2, 1).tolist()


def test_color_jitter_changes_image_only_by_the_factor():
    image, label = _pair()
    im2, lab2 = T.ColorJitter(brightness=0.5)(image, label, _Always(uniform=1.5))
    assert lab2 is label
    assert im2.astype(int).tolist() == np.clip(np.floor(image * 1.5 + 0.5), 0, 255).astype(int).tolist()
    grey = np.full((2, 2, 3), 80, np.uint8)  # saturation leaves grey pixels unchanged
    assert (T.ColorJitter(saturation=0.5)(grey, None, _Always(uniform=0.5))[0] == 80).all()


def test_build_transforms_order_and_errors():
    c = T.build_transforms({"hflip": 0.5, "resize": [8, 4], "crop": [4, 4]})
    assert [type(t).__name__ for t in c.transforms] == ["Resize", "RandomCrop", "RandomHorizontalFlip"]
    with pytest.raises(ValueError, match="unknown transform key.*'rotate'"):
        T.build_transforms({"rotate": 10})
    with pytest.raises(ValueError, match="'crop' needs \\[W, H\\]"):
        T.build_transforms({"crop": 5})
    with pytest.raises(ValueError, match="unknown color_jitter key.*'hue'"):
        T.build_transforms({"color_jitter": {"hue": 0.1}})


def _jitter_reference(image, fb, fc, fs, order):
    """The three operations one after the other on the whole image, in float64."""
    img = image.astype(np.float64)
    w = np.array([0.299, 0.587, 0.114])
    for i in order:
        if i == 0:
            img = img * fb
        elif i == 1:
            m = (img @ w).mean()
            img = (img - m) * fc + m
        else:
            g = (img @ w)[..., None]
            img = (img - g) * fs + g
    return np.clip(np.floor(img + 0.5), 0, 255)


@pytest.mark.parametrize("seed", range(6))
def test_color_jitter_equals_sequential_operations_in_its_random_order(seed):
    rng_img = np.random.default_rng(100 + seed)
    image = rng_img.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    cj = T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)
    out, _ = cj(image, None, np.random.default_rng(seed))
    # replay the generator's draws: three factors, then the order
    r = np.random.default_rng(seed)
    fb, fc, fs = (r.uniform(0.6, 1.4) for _ in range(3))
    order = r.permutation(3)
    expected = _jitter_reference(image, fb, fc, fs, order)
    assert np.abs(out.astype(int) - expected).max() <= 1  # float32 vs float64 rounding at .5
    assert (np.abs(out.astype(int) - expected) > 0).mean() < 0.02


def test_resize_image_matches_pillow_bicubic():
    """The fast uint8 kernel against the references' Pillow BICUBIC resize (down and up)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(base).resize((191, 105), Image.BICUBIC))  # smooth-ish content
    for size in ((128, 72), (64, 40), (300, 160)):
        ours = T.resize_image(image, size).astype(int)
        ref = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC)).astype(int)
        assert ours.shape == ref.shape
        d = np.abs(ours - ref)
        assert d.max() <= 2 and d.mean() < 0.05, (size, d.max(), d.mean())
