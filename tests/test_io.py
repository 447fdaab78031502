"""Image I/O: round trips (8/16-bit, grey/RGB/RGBA/palette, TIFF, JPEG, WebP, BMP), EXIF orientation, bad files,
atomic writes and PNG metadata."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from mattecli.errors import InputError, UsageError
from mattecli.imaging.io import (apply_orientation, atomic_path, read_grey, read_image, read_png_text, read_rgb,
                                 verify_decodes, write_image)

rng = np.random.default_rng(0)


def _img(h=13, w=17, c=3, dtype=np.uint8):
    hi = 255 if dtype == np.uint8 else 65535
    shape = (h, w) if c == 1 else (h, w, c)
    return rng.integers(0, hi + 1, shape, dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("c", [1, 3, 4])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_lossless_round_trip(tmp_path, c, bits, ext):
    a = _img(c=c, dtype=np.uint8 if bits == 8 else np.uint16)
    p = write_image(tmp_path / f"x{ext}", a, bits=bits)
    b = read_image(p)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_float_to_16bit_and_back(tmp_path):
    f = np.linspace(0, 1, 7 * 9, dtype=np.float32).reshape(7, 9)
    b = read_image(write_image(tmp_path / "a.png", f, bits=16))
    assert b.dtype == np.uint16
    np.testing.assert_allclose(b / 65535.0, f, atol=1 / 65535)
    np.testing.assert_allclose(read_grey(tmp_path / "a.png"), f, atol=1 / 65535)


def test_16bit_rgb_png_written_by_pillow_reader_keeps_precision(tmp_path):
    import cv2

    a = _img(c=3, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c.png"), a[..., ::-1])
    b = read_rgb(tmp_path / "c.png")  # 16-bit files come back as float32 [0,1], not truncated to 8 bits
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a / 65535.0, atol=1e-6)


def test_jpeg_rgb_and_refusals(tmp_path):
    a = np.full((16, 16, 3), (200, 100, 50), np.uint8)
    b = read_image(write_image(tmp_path / "x.jpg", a))
    assert b.shape == a.shape and np.abs(b.astype(int) - a).max() <= 3
    with pytest.raises(UsageError, match="JPEG"):
        write_image(tmp_path / "rgba.jpg", _img(c=4))
    with pytest.raises(UsageError, match="JPEG"):
        write_image(tmp_path / "alpha.jpg", _img(c=1), what="alpha")
    assert not list(tmp_path.glob("rgba*")) and not list(tmp_path.glob("alpha*")) and not list(tmp_path.glob(".*"))


def test_palette_grey_alpha_webp_bmp(tmp_path):
    pal = Image.new("P", (5, 4))
    pal.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255, 10, 200, 30] + [0] * (256 * 3 - 12))
    pal.putdata([0, 1, 2, 3, 0] * 4)
    pal.save(tmp_path / "p.png")
    p = read_image(tmp_path / "p.png")
    assert p.shape == (4, 5, 3) and tuple(p[0, 3]) == (10, 200, 30) and tuple(p[0, 1]) == (128, 128, 128)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    pt = read_image(tmp_path / "pt.png")
    assert pt.shape == (4, 5, 4) and pt[0, 0, 3] == 0 and pt[0, 1, 3] == 255
    la = Image.fromarray(np.dstack([_img(4, 5, 1), _img(4, 5, 1)]), "LA")
    la.save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png").shape == (4, 5, 4)
    a = _img(8, 6, 3)
    Image.fromarray(a).save(tmp_path / "a.webp", lossless=True)
    Image.fromarray(a).save(tmp_path / "a.bmp")
    np.testing.assert_array_equal(read_image(tmp_path / "a.webp"), a)
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp"), a)
    g = Image.fromarray(_img(6, 7, 1)).convert("1")
    g.save(tmp_path / "bw.png")
    assert read_image(tmp_path / "bw.png").dtype == np.uint8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    a = _img(5, 8, 3)
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    got = read_image(tmp_path / "o.png")
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(apply_orientation(a, orientation), want)


def test_exif_rotated_jpeg(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW for display
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    b = read_image(tmp_path / "r.jpg")
    assert b.shape == (40, 20, 3)
    assert b[:15].mean() > 200 and b[25:].mean() < 50  # the left half is now on top


@pytest.mark.parametrize("kind", ["empty", "truncated_png", "truncated_jpg", "text", "folder", "missing"])
def test_bad_files_give_one_line_input_error(tmp_path, kind):
    p = tmp_path / "bad.png"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated_png":
        write_image(p, _img(64, 64, 3))
        p.write_bytes(p.read_bytes()[:200])
    elif kind == "truncated_jpg":
        p = tmp_path / "bad.jpg"
        buf = io.BytesIO()
        Image.fromarray(_img(64, 64, 3)).save(buf, "JPEG")
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "text":
        p.write_text("hello, not an image\n")
    elif kind == "folder":
        p.mkdir()
    with pytest.raises(InputError) as ei:
        read_image(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg
    assert not verify_decodes(p)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "sub" / "out.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "wb").write(b"partial")
            raise RuntimeError("boom")
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError) as ei:
        write_image(blocker / "out.png", _img())
    assert "\n" not in str(ei.value) and str(blocker) in str(ei.value)


def test_atomic_replace_keeps_old_file_until_done(tmp_path):
    p = write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(UsageError):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 4), np.uint8))
    assert read_image(p).max() == 0
    write_image(p, np.full((4, 4), 255, np.uint8))
    assert read_image(p).min() == 255
    assert [x.name for x in tmp_path.iterdir()] == ["a.png"]


def test_png_text_metadata(tmp_path):
    p = write_image(tmp_path / "m.png", _img(c=4), metadata={"alpha-mode": "premultiplied", "Software": "mattecli"})
    assert read_png_text(p) == {"alpha-mode": "premultiplied", "Software": "mattecli"}
    p16 = write_image(tmp_path / "m16.png", _img(c=4, dtype=np.uint16), bits=16, metadata={"alpha-mode": "straight"})
    assert read_png_text(p16)["alpha-mode"] == "straight"
    assert verify_decodes(p16)


def test_read_grey_of_rgba_cutout_uses_alpha(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 3] = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    write_image(tmp_path / "c.png", a)
    np.testing.assert_allclose(read_grey(tmp_path / "c.png"), a[..., 3] / 255.0, atol=1e-6)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("mode,tag", [("straight", 2), ("premultiplied", 1)])
def test_rgba_tiff_has_extrasamples(tmp_path, bits, mode, tag):
    dtype = np.uint8 if bits == 8 else np.uint16
    a = _img(c=4, dtype=dtype)
    p = write_image(tmp_path / "x.tif", a, bits=bits, metadata={"alpha-mode": mode})
    with Image.open(p) as im:
        assert tuple(im.tag_v2.get(338)) == (tag,)          # ExtraSamples: 2 unassociated, 1 associated alpha
        assert im.size == (a.shape[1], a.shape[0])
    np.testing.assert_array_equal(read_image(p), a)       # stored values come back unchanged
