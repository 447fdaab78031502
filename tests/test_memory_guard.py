"""The memory guard (mattecli.memory), --max-side in the contract, trimap band limits, header-first decoding.

No test allocates what the guard protects against: the available-memory reader is monkeypatched to a small value,
huge images exist only as tiny PNG files whose header claims the size, and the refused trimap bands are checked with
OpenCV's morphology made to fail.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import mattecli
from foundation_helpers import invoke, small_example, write_example
from mattecli import memory
from mattecli.errors import InputError, UsageError
from mattecli.imaging import trimap as T
from mattecli.registry import get, list_models


def _png_header_only(path, w: int, h: int, rows: int | None = None) -> None:
    """A valid grey 8-bit PNG of WxH (all zero) written row by row: a small file, never a WxH array in memory.
    ``rows`` < h writes a truncated image (only the header matters to the guard)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = bytes(w + 1)
    body = b"".join(comp.compress(row) for _ in range(h if rows is None else rows)) + comp.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _limit(monkeypatch, nbytes: int) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: int(nbytes))


# ------------------------------------------------------------------------------------------------ estimates
def _entries():
    return [e for e in list_models() if e.memory is not None]


def test_every_model_has_a_memory_model():
    assert [e.name for e in list_models() if e.memory is None] == []


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e.name)
def test_estimates_grow_with_the_size(entry):
    opts = entry.option_defaults()
    sides = [16, 32, 64, 100, 256, 500, 512, 640, 1000, 1080, 1600, 2048, 4000, 8000, 16000]
    squares = [memory.estimate_bytes(entry, opts, s, s) for s in sides]
    assert all(b >= a for a, b in zip(squares, squares[1:])), squares
    assert squares[-1] > squares[0] > 0
    # 4:3 from the sizes where no model enlarges its input any more (MODNet runs small images at 512 px)
    wide = [memory.estimate_bytes(entry, opts, s * 3 // 4, s) for s in sides if s >= 1000]
    assert all(b >= a for a, b in zip(wide, wide[1:])), wide
    assert memory.estimate_bytes(entry, opts, 500, 500, n=2) >= squares[sides.index(500)]


def test_closed_form_grows_faster_than_the_unknown_pixels():
    e = get("closed-form")
    opts = e.option_defaults()
    est = [memory.estimate_bytes(e, opts, 4000, 4000, stats=(u, 4 * u)) for u in (1e4, 1e5, 1e6, 4e6)]
    assert all(b > a for a, b in zip(est, est[1:]))
    base = memory.estimate_bytes(e, opts, 4000, 4000, stats=(0, 0))
    growth = [(x - base) for x in est]
    assert growth[3] / growth[2] > 4.0          # superlinear: LDLT fill
    wider = memory.estimate_bytes(e, {**opts, "radius": 3}, 4000, 4000, stats=(1e6, 4e6))
    assert wider > est[2]                       # a larger window, a denser Laplacian


def test_option_rules_tile_ratio_and_refine_mode():
    fba = get("fba")
    d = fba.option_defaults()
    whole = memory.estimate_bytes(fba, d, 4000, 4000)
    tiled = memory.estimate_bytes(fba, {**d, "tile": 512}, 4000, 4000)
    assert tiled < whole / 4
    rvm = get("rvm")
    r = rvm.option_defaults()
    assert memory.estimate_bytes(rvm, {**r, "downsample_ratio": 1.0}, 4000, 4000) > \
        memory.estimate_bytes(rvm, r, 4000, 4000)
    bg = get("bgmv2")
    b = bg.option_defaults()
    assert memory.estimate_bytes(bg, {**b, "refine_mode": "full"}, 4000, 4000) > \
        memory.estimate_bytes(bg, b, 4000, 4000)


def test_available_memory_readers(monkeypatch):
    free = memory.available_bytes()
    assert free is None or free >= 0
    monkeypatch.setenv("MATTECLI_MEMORY", "512M")
    assert memory.available_bytes() == 512 << 20
    monkeypatch.setenv("MATTECLI_MEMORY", "off")
    assert memory.available_bytes() is None
    assert memory.parse_bytes("1.5G") == 3 << 29 and memory.parse_bytes("2048") == 2048
    assert memory.device_free_bytes("cpu") is None


# ------------------------------------------------------------------------------------------------ refusals
def _cf_inputs(size: int):
    ex = small_example(size)
    return ex["hair"], ex["hair_trimap"]


def test_refusal_names_the_estimate_and_the_ways_out(monkeypatch):
    from mattecli.backends.classical import closed_form

    img, tri = _cf_inputs(400)
    m = mattecli.load_model("closed-form")
    monkeypatch.setattr(closed_form, "estimate_alpha", lambda *a, **k: pytest.fail("ran past the guard"))
    e = m.entry
    full = memory.estimate_bytes(e, m.options, 400, 400, trimap=T.quantise_trimap(tri))
    _limit(monkeypatch, full * memory.SAFETY * 0.9)
    with pytest.raises(memory.TooLarge) as err:
        m.predict(img, tri)
    msg = str(err.value)
    assert "\n" not in msg and "closed-form on a 400x400 image needs about" in msg and "available" in msg
    assert "--max-side" in msg
    side = int(msg.split("--max-side ")[1].split()[0])
    assert 64 <= side < 400
    monkeypatch.setattr(closed_form, "estimate_alpha", lambda i, t, *a: np.zeros(i.shape[:2]))
    assert mattecli.load_model("closed-form", max_side=side).predict(img, tri).alpha.shape == (400, 400)


def test_refusal_names_tiles_and_lighter_models(monkeypatch):
    fba = get("fba")
    d = fba.option_defaults()
    need = memory.estimate_bytes(fba, d, 6000, 6000)
    err = memory.refusal(fba, d, 6000, 6000, need, int(need / 3), path="big.png")
    msg = str(err)
    assert msg.startswith("big.png: fba on a 6000x6000 image needs about")
    assert "--option tile=" in msg and "--max-side" in msg and "--model " in msg


def test_max_side_gives_an_alpha_of_the_input_size(monkeypatch):
    img, tri = _cf_inputs(150)
    img, tri = img[:, :120], tri[:, :120]
    m = mattecli.load_model("closed-form", max_side=64)
    seen = []
    from mattecli.backends.classical import closed_form

    real = closed_form.estimate_alpha
    monkeypatch.setattr(closed_form, "estimate_alpha", lambda i, t, *a: seen.append(i.shape) or real(i, t, *a))
    r = m.predict(img, tri)
    assert seen == [(64, 51, 3)]
    assert r.alpha.shape == (150, 120) and r.alpha.dtype == np.float32
    t = T.quantise_trimap(tri)
    assert (r.alpha[t == 0] == 0).all() and (r.alpha[t == 255] == 1).all()
    full = mattecli.load_model("closed-form").predict(img, tri).alpha
    assert np.abs(r.alpha - full).mean() < 0.12          # hair detail is lost at 64 px, the matte is not
    with pytest.raises(UsageError, match="max-side"):
        mattecli.load_model("closed-form", max_side=4)


def test_shrunk_trimap_keeps_a_thin_band():
    import torch

    t = np.zeros((1, 1, 400, 300), np.uint8)
    t[..., 200:, :] = 255
    t[..., 199, :] = 128                      # a one-pixel band: nearest sampling would miss it at 1/10
    small = memory.shrink_trimap(torch.from_numpy(t), 40, 30)[0, 0].numpy()
    assert set(np.unique(small)) == {0, 128, 255}
    assert (small[19] == 128).all() and (small[:19] == 0).all() and (small[21:] == 255).all()


def test_batch_goes_on_past_a_refused_item(tmp_path, monkeypatch):
    small = write_example(tmp_path / "in", name="small", size=48)
    big = write_example(tmp_path / "in", name="big", size=160)
    e = get("closed-form")
    opts = e.option_defaults()

    def est(size):
        return memory.estimate_bytes(e, opts, size, size, trimap=T.quantise_trimap(small_example(size)["hair_trimap"]))

    lo, hi = est(48), est(160)
    assert hi > lo
    _limit(monkeypatch, (lo + hi) / 2 * memory.SAFETY)
    out = tmp_path / "out"
    r = invoke("matte", small["image"], big["image"], "--trimap", tmp_path / "in", "--model", "closed-form",
               "-o", out)
    assert r.exit_code == 1, r.stderr
    assert (out / "small_alpha.png").is_file() and not (out / "big_alpha.png").exists()
    line = next(ln for ln in r.stderr.splitlines() if "big.png" in ln)
    assert "needs about" in line and "available" in line


# ------------------------------------------------------------------------------------------------ decoding
def test_huge_png_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    from mattecli.imaging import io as mio

    p = tmp_path / "huge.png"
    _png_header_only(p, 12000, 12000, rows=8)        # 144 M pixels claimed, a few kB on disk
    assert p.stat().st_size < 100_000
    assert mio.image_size(p) == (12000, 12000)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded before the check"))
    _limit(monkeypatch, 1 << 30)
    with pytest.raises(memory.TooLarge, match=r"huge.png: a 12000x12000 image needs about .* to decode"):
        mio.read_image(p)
    # the model's estimate, before any decode: RVM at 12000x12000
    rvm = get("rvm")
    stand_in = type("B", (), {"entry": rvm, "options": rvm.option_defaults(), "device": "cpu", "max_side": None})()
    _limit(monkeypatch, 1 << 50)
    need = memory.check_file(stand_in, p)
    _limit(monkeypatch, need * memory.SAFETY * 0.97)
    with pytest.raises(memory.TooLarge) as err:
        memory.check_file(stand_in, p)
    assert str(err.value).startswith(f"{p}: rvm on a 12000x12000 image") and "--max-side" in str(err.value)
    stand_in.max_side = 2000
    _limit(monkeypatch, 64 << 30)
    assert memory.check_file(stand_in, p) > 0


def test_pillow_limit_is_set_and_large_images_pass_the_header(tmp_path, monkeypatch, recwarn):
    from PIL import Image, ImageFile

    from mattecli.imaging import io as mio

    p = tmp_path / "big.png"
    _png_header_only(p, 12000, 12000, rows=2)     # over Pillow's default limit (89 M pixels)
    seen = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: seen.append(self.size) or pytest.skip("stop"))
    _limit(monkeypatch, 64 << 30)
    with pytest.raises(pytest.skip.Exception):
        mio.read_image(p)
    assert seen == [(12000, 12000)] and Image.MAX_IMAGE_PIXELS == mio.MAX_PIXELS
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]
    over = tmp_path / "over.png"
    _png_header_only(over, 40000, 40000, rows=1)
    with pytest.raises(InputError, match="more than 1073741824 pixels"):
        mio.read_image(over)


# ------------------------------------------------------------------------------------------------ trimap
def _block_morphology(monkeypatch):
    import cv2

    for name in ("erode", "dilate", "getStructuringElement", "distanceTransform"):
        monkeypatch.setattr(cv2, name, lambda *a, **k: pytest.fail("OpenCV called before the band check"))


@pytest.mark.parametrize("band", ["20000", "500%", "1e8", "0.99"])
def test_band_wider_than_the_image_refused_before_opencv(band, monkeypatch):
    _block_morphology(monkeypatch)
    alpha = np.zeros((262, 400), np.float32)
    alpha[100:160, 150:250] = 1.0
    b = T.band_pixels(band, alpha.shape)
    with pytest.raises(UsageError, match=r"wider than the image \(400x262\); use at most 400 px"):
        T.trimap_from_alpha(alpha, b)
    with pytest.raises(UsageError, match="wider than the image"):
        T.trimap_from_mask(alpha, b)


def test_trimap_cli_refuses_a_huge_band(tmp_path, monkeypatch):
    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    _block_morphology(monkeypatch)
    r = invoke("trimap", ex["image"], "--from-alpha", ex["alpha"], "--band", "1e8", "-o", tmp_path / "t")
    assert r.exit_code != 0
    assert "wider than the image (48x48)" in r.stderr


def test_large_bands_are_bounded_and_match_opencv():
    import cv2

    yy, xx = np.mgrid[0:300, 0:400]
    m = ((yy - 150) / 120.0) ** 2 + ((xx - 190) / 160.0) ** 2 < 1
    m[:, 350:] = True
    for shape in ("rect", "cross", "ellipse"):
        for r in (T.SMALL_RADIUS + 1, 40):
            ref = cv2.erode(m.astype(np.uint8), T._kernel(r, shape), borderType=cv2.BORDER_CONSTANT,
                            borderValue=1).astype(bool)
            got = T._erode(m, r, shape)
            diff = int((ref != got).sum())
            assert diff == 0 if shape != "ellipse" else diff <= 0.01 * ref.size, (shape, r, diff)


def test_trimap_generation_memory_is_checked(monkeypatch):
    _limit(monkeypatch, 1000)
    with pytest.raises(memory.TooLarge, match="to make the trimap"):
        T.trimap_from_mask(np.zeros((100, 100), np.float32), 3)
