"""Trimap parsing (thresholds, formats, validation) and generation geometry."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from conftest import need_shared
from mattecli.errors import InputError, UsageError
from mattecli.imaging import trimap as T
from mattecli.imaging.io import write_image


def test_thresholds_match_pymatting():
    from pymatting import trimap_split

    levels = np.arange(256, dtype=np.uint8)
    q = T.quantise_trimap(levels[None, :])[0]
    is_fg, is_bg, _, _ = trimap_split(levels[None, :] / 255.0)
    np.testing.assert_array_equal(q == 255, is_fg)
    np.testing.assert_array_equal(q == 0, is_bg)
    assert set(np.unique(q)) == {0, 128, 255}
    assert q[25] == 0 and q[26] == 128 and q[102] == 128 and q[229] == 128 and q[230] == 255


def test_16bit_float_and_rgb_trimaps():
    a16 = np.array([[0, 65535 // 2, 65535]], np.uint16)
    np.testing.assert_array_equal(T.quantise_trimap(a16), [[0, 128, 255]])
    np.testing.assert_array_equal(T.quantise_trimap(np.array([[0.0, 0.5, 1.0]])), [[0, 128, 255]])
    rgb = np.repeat(np.array([[0, 128, 255]], np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(T.quantise_trimap(rgb), [[0, 128, 255]])
    rgba = np.concatenate([rgb, np.full((1, 3, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(T.quantise_trimap(rgba), [[0, 128, 255]])


def test_rejects_transparent_rgba_and_colour(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 128
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0
    write_image(tmp_path / "t.png", rgba)
    with pytest.raises(InputError, match="transparent") as ei:
        T.read_trimap(tmp_path / "t.png")
    assert str(tmp_path / "t.png") in str(ei.value) and "\n" not in str(ei.value)
    col = np.zeros((4, 4, 3), np.uint8)
    col[..., 0] = 255
    col[0, 0] = 128
    write_image(tmp_path / "c.png", col)
    with pytest.raises(InputError, match="colour"):
        T.read_trimap(tmp_path / "c.png")


def test_size_mismatch_and_no_unknown(tmp_path):
    t = np.zeros((10, 12), np.uint8)
    t[3:6, 3:6] = 128
    write_image(tmp_path / "t.png", t)
    assert T.read_trimap(tmp_path / "t.png", (10, 12)).shape == (10, 12)
    with pytest.raises(InputError, match=r"12x10 but the image img.png is 13x10") as ei:
        T.read_trimap(tmp_path / "t.png", (10, 13), "img.png")
    assert str(tmp_path / "t.png") in str(ei.value)
    write_image(tmp_path / "k.png", np.where(t > 0, 255, 0).astype(np.uint8))
    with pytest.raises(InputError, match="no unknown"):
        T.read_trimap(tmp_path / "k.png")


def test_palette_trimap_from_alphamatting():
    p = need_shared("data", "alphamatting", "trimap1", "GT01.png")
    assert Image.open(p).mode == "P"
    t = T.read_trimap(p)
    assert set(np.unique(t)) == {0, 128, 255}
    raw = np.asarray(Image.open(p).convert("L"))
    np.testing.assert_array_equal(t, raw)  # palette {0,128,255} maps to itself


def test_lemur_rgba_trimap_with_102_unknown():
    p = need_shared("data", "pymatting", "data", "lemur", "lemur_trimap.png")
    raw = np.asarray(Image.open(p))
    assert raw.shape[2] == 4 and 102 in np.unique(raw[..., 0])
    t = T.read_trimap(p, raw.shape[:2])
    np.testing.assert_array_equal(t == 128, raw[..., 0] == 102)
    np.testing.assert_array_equal(t == 255, raw[..., 0] == 255)


def test_band_pixels():
    assert T.band_pixels("12", (100, 100)) == 12
    assert T.band_pixels(7, (100, 100)) == 7
    d = math.hypot(300, 400)
    assert T.band_pixels("2%", (300, 400)) == round(0.02 * d) == 10
    assert T.band_pixels("0.02", (300, 400)) == 10
    for bad in ("-3", "abc", "1.5", "-1%"):
        with pytest.raises(UsageError):
            T.band_pixels(bad, (10, 10))


def test_mask_band_geometry_rect():
    m = np.zeros((60, 70), np.float32)
    m[20:40, 25:45] = 1.0  # 20x20 square
    t = T.trimap_from_mask(m, 3, "rect")
    fg = np.argwhere(t == 255)
    assert fg.min(0).tolist() == [23, 28] and fg.max(0).tolist() == [36, 41]  # eroded by 3
    unk = np.argwhere(t == 128)
    assert unk.min(0).tolist() == [17, 22] and unk.max(0).tolist() == [42, 47]  # grown by 3
    assert (t == 128).sum() == 26 * 26 - 14 * 14


def test_mask_band_geometry_ellipse_distance():
    import cv2

    m = np.zeros((80, 80), np.float32)
    cv2.circle(m, (40, 40), 20, 1.0, -1)
    band = 5
    t = T.trimap_from_mask(m, band, "ellipse")
    inside = m >= 0.5
    d_in = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    dist_to_edge = np.where(inside, d_in, d_out)
    assert dist_to_edge[t == 128].max() <= band + 1.0
    assert dist_to_edge[t != 128].min() >= band - 0.5
    assert T.trimap_from_mask(m, band, "cross").shape == m.shape
    with pytest.raises(UsageError):
        T.trimap_from_mask(m, band, "hexagon")


def test_border_does_not_erode():
    m = np.zeros((30, 30), np.float32)
    m[:, :15] = 1.0  # foreground touches the left border
    t = T.trimap_from_mask(m, 4, "ellipse")
    assert (t[:, :11] == 255).all() and (t[:, 19:] == 0).all() and (t[:, 11:19] == 128).all()


def test_from_alpha_thresholds_and_band():
    a = np.zeros((20, 20), np.float32)
    a[:, 10:] = 1.0
    a[:, 9] = 0.5
    a[:, 8] = 0.05   # <= lo: background
    a[:, 11] = 0.97  # >= hi: foreground
    t0 = T.trimap_from_alpha(a, 0)
    assert (t0[:, 9] == 128).all() and (t0[:, 8] == 0).all() and (t0[:, 11] == 255).all()
    t2 = T.trimap_from_alpha(a, 2, "rect")
    assert (t2[:, 7:12] == 128).all() and (t2[:, :7] == 0).all() and (t2[:, 12:] == 255).all()
    with pytest.raises(UsageError):
        T.trimap_from_alpha(a, 0, lo=0.9, hi=0.1)


def test_from_labels():
    lab = np.zeros((20, 20), np.int32)
    lab[5:15, 5:15] = 3
    lab[0:3, 0:3] = 7
    t = T.trimap_from_labels(lab, [3], 1, "rect")
    assert t[10, 10] == 255 and t[1, 1] == 0 and t[5, 5] == 128


def test_resize_to_image_same_aspect_only():
    from mattecli.errors import InputError
    from mattecli.imaging.trimap import resize_to_image

    m = np.zeros((10, 20), np.float32)
    m[:, 10:] = 1.0
    assert resize_to_image(m, (10, 20)) is m
    r = resize_to_image(m, (20, 40), "m.png", "img.png")
    assert r.shape == (20, 40) and r[:, :18].max() == 0 and r[:, 22:].min() == 1 and 0 <= r.min() <= r.max() <= 1
    with pytest.raises(InputError, match="m.png.*img.png.*aspect"):
        resize_to_image(m, (20, 20), "m.png", "img.png")
