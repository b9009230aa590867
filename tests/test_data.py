import numpy as np
import pytest
import imageio.v3 as iio

from srnas.supernet.data import PatchSampler, load_images, make_pairs, resolve_dataset
from srnas.supernet.errors import UserError
from srnas.supernet.imaging import ImageError, downscale, load_folder, read_image


def _write(folder, name, shape, seed=0):
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    iio.imwrite(folder / name, img)
    return img


def test_embedded_images_ship_with_scikit_image():
    train, val = load_images("skimage", "train"), load_images("skimage", "val")
    assert len(train) >= 5 and len(val) >= 1
    assert {im.name for im in train}.isdisjoint({im.name for im in val})
    assert all(im.rgb.ndim == 3 and im.rgb.shape[2] == 3 and im.rgb.dtype == np.uint8 for im in train)


def test_patches_are_aligned_and_deterministic():
    imgs = load_images("skimage", "train")
    s = PatchSampler(imgs, scale=2, patch=12, batch=6, augment=True, seed=3)
    lr, hr = s.sample(7)
    assert lr.shape == (6, 3, 12, 12) and hr.shape == (6, 3, 24, 24)
    assert 0.0 <= float(lr.min()) and float(hr.max()) <= 1.0
    lr2, hr2 = s.sample(7)
    assert np.array_equal(lr.numpy(), lr2.numpy()) and np.array_equal(hr.numpy(), hr2.numpy())
    assert not np.array_equal(lr.numpy(), s.sample(8)[0].numpy())
    # the LR patch is the bicubic downscale of the HR patch (up to border effects and rounding)
    for i in range(6):
        hr_u8 = (hr[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        lr_u8 = (lr[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        inner = np.abs(downscale(hr_u8, 2).astype(int) - lr_u8.astype(int))[2:-2, 2:-2]
        assert inner.mean() < 2.0


def test_ranks_draw_different_batches():
    imgs = load_images("skimage", "train")
    a = PatchSampler(imgs, 2, 12, 4, seed=0, rank=0).sample(0)[0]
    b = PatchSampler(imgs, 2, 12, 4, seed=0, rank=1).sample(0)[0]
    assert not np.array_equal(a.numpy(), b.numpy())


def test_greyscale_and_rgba_files(tmp_path):
    _write(tmp_path, "g.png", (20, 30))
    _write(tmp_path, "a.png", (20, 30, 4), seed=1)
    g, a = read_image(tmp_path / "g.png"), read_image(tmp_path / "a.png")
    assert g.grey and g.rgb.shape == (20, 30, 3)
    assert not a.grey and a.rgb.shape == (20, 30, 3)


def test_unreadable_and_tiny_images_are_skipped_with_warning(tmp_path):
    _write(tmp_path, "big.png", (64, 64, 3))
    _write(tmp_path, "tiny.png", (8, 8, 3))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning) as rec:
        imgs = load_folder(tmp_path, min_side=32)
    assert [im.name for im in imgs] == ["big"]
    msgs = " ".join(str(w.message) for w in rec)
    assert "broken" in msgs and "tiny" in msgs


def test_no_usable_images_is_a_clear_error(tmp_path):
    _write(tmp_path, "tiny.png", (8, 8, 3))
    with pytest.warns(UserWarning), pytest.raises(ImageError, match="no usable images"):
        PatchSampler(load_folder(tmp_path), scale=2, patch=16, batch=2)
    with pytest.raises(ImageError, match="does not exist"):
        load_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        load_folder(tmp_path / "empty")


def test_unknown_dataset_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="SRNAS_DATA"):
        resolve_dataset("NoSuchSet", data_root=tmp_path)


def test_pairs_are_modcropped():
    pairs = make_pairs(load_images("skimage", "val"), 3)
    for p in pairs:
        assert p.hr.shape[0] % 3 == 0 and p.hr.shape[1] % 3 == 0
        assert p.lr.shape[0] * 3 == p.hr.shape[0]
