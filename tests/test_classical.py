"""Classical backends: same alpha as calling pymatting directly (alphamatting crops, the lemur with its 102 trimap);
closed-form's JIT-free solver: the same linear system as pymatting's, solved exactly."""
from __future__ import annotations

import numpy as np
import pytest

import mattecli
from conftest import need_shared
from mattecli.backends.classical import ENTRIES
from mattecli.errors import MatteError, MissingInput, UsageError
from mattecli.imaging.io import read_rgb
from mattecli.imaging.trimap import read_trimap

FUNCS = {"closed-form": "estimate_alpha_cf", "knn": "estimate_alpha_knn", "lkm": "estimate_alpha_lkm",
         "rw": "estimate_alpha_rw", "sm": "estimate_alpha_sm", "lbdm": "estimate_alpha_lbdm"}


def _crop_around_unknown(img, tri_raw, tri_q, size):
    """A size x size window that contains background, foreground and unknown pixels (pymatting needs all three)."""
    ys, xs = np.nonzero(tri_q == 128)
    order = np.argsort((ys - np.median(ys)) ** 2 + (xs - np.median(xs)) ** 2)
    for i in order[:: max(1, len(order) // 400)]:
        y0 = int(np.clip(ys[i] - size // 2, 0, img.shape[0] - size))
        x0 = int(np.clip(xs[i] - size // 2, 0, img.shape[1] - size))
        w = tri_q[y0:y0 + size, x0:x0 + size]
        if (w == 0).mean() > 0.1 and (w == 255).mean() > 0.1 and (w == 128).mean() > 0.1:
            s = (slice(y0, y0 + size), slice(x0, x0 + size))
            return img[s], tri_raw[s], tri_q[s]
    raise AssertionError("no window with all three trimap classes")


def _load_pymatting_style(img_path, tri_path):
    from pymatting import load_image

    return load_image(str(img_path), "RGB"), load_image(str(tri_path), "GRAY")


def test_registry_entries():
    names = {e.name for e in ENTRIES}
    assert names == set(FUNCS)
    for e in ENTRIES:
        assert e.requires == frozenset({"trimap"}) and not e.weights and e.summary and e.paper
        assert "MIT" in e.code_license and e.adapter.endswith(":ClassicalBackend")
    assert mattecli.load_model("cf").entry.name == "closed-form"
    assert max(ENTRIES, key=lambda e: e.quality).name == "closed-form"


@pytest.mark.parametrize("name", list(FUNCS))
def test_equals_pymatting_on_alphamatting_crop(name):
    import pymatting

    d = need_shared("data", "alphamatting")
    img_f, tri_f = _load_pymatting_style(d / "image" / "GT02.png", d / "trimap1" / "GT02.png")
    img_u8 = read_rgb(d / "image" / "GT02.png")
    tri_q = read_trimap(d / "trimap1" / "GT02.png", img_u8.shape[:2])
    np.testing.assert_array_equal(img_u8 / 255.0, img_f)
    size = 40 if name in ("sm", "knn") else 48
    ci, ct, cq = _crop_around_unknown(img_f, tri_f, tri_q, size)
    cu8, _, _ = _crop_around_unknown(img_u8, tri_f, tri_q, size)
    want = getattr(pymatting, FUNCS[name])(np.ascontiguousarray(ci), np.ascontiguousarray(ct))
    opts = {"solver": "pymatting"} if name == "closed-form" else {}
    got = mattecli.load_model(name, **opts).predict(np.ascontiguousarray(cu8), trimap=np.ascontiguousarray(cq)).alpha
    assert got.dtype == np.float32 and got.shape == cq.shape
    want = np.clip(want, 0, 1).astype(np.float32)
    want[cq == 0], want[cq == 255] = 0, 1       # known pixels are exact (pymatting's soft penalty: ~1e-3 off)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["closed-form", "sm"])
def test_equals_pymatting_on_lemur_102_trimap(name):
    import pymatting

    d = need_shared("data", "pymatting", "data", "lemur")
    img_f, tri_f = _load_pymatting_style(d / "lemur.png", d / "lemur_trimap.png")
    assert np.isclose(tri_f, 0.4).any()  # pymatting reads 102/255 as unknown
    img_u8 = read_rgb(d / "lemur.png")
    tri_q = read_trimap(d / "lemur_trimap.png", img_u8.shape[:2])
    ci, ct, cq = _crop_around_unknown(img_f, tri_f, tri_q, 56)
    cu8, _, _ = _crop_around_unknown(img_u8, tri_f, tri_q, 56)
    want = getattr(pymatting, FUNCS[name])(np.ascontiguousarray(ci), np.ascontiguousarray(ct))
    opts = {"solver": "pymatting"} if name == "closed-form" else {}
    got = mattecli.load_model(name, **opts).predict(np.ascontiguousarray(cu8), trimap=np.ascontiguousarray(cq)).alpha
    want = np.clip(want, 0, 1).astype(np.float32)
    want[cq == 0], want[cq == 255] = 0, 1
    np.testing.assert_array_equal(got, want)


def test_options_are_pymatting_kwargs():
    import pymatting

    rng = np.random.default_rng(1)
    img = rng.random((24, 24, 3))
    tri = np.zeros((24, 24))
    tri[:, 12:] = 1
    tri[:, 9:15] = 0.5
    want = pymatting.estimate_alpha_cf(img, tri, laplacian_kwargs={"epsilon": 1e-4}, cg_kwargs={"maxiter": 50})
    got = mattecli.load_model("closed-form", epsilon=1e-4, maxiter=50, solver="pymatting").predict(
        img.astype(np.float32), trimap=tri)
    np.testing.assert_allclose(got.alpha, want, atol=1e-4)  # float32 input image vs float64
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("knn", epsilon=1)
    with pytest.raises(MissingInput, match="--trimap"):
        mattecli.load_model("lkm").predict(img)
    with pytest.raises(MatteError, match="takes no weights"):
        mattecli.load_model("rw", weights="x.pth")


@pytest.mark.parametrize("image,trimap_dir", [("GT02", "trimap1"), ("GT04", "trimap1"), ("GT01", "trimap2")])
def test_direct_solver_solves_pymattings_system(image, trimap_dir):
    """The default closed-form solver builds pymatting's linear system and solves it exactly: the difference to
    pymatting is its conjugate gradient's stopping error (rtol 1e-7), not a different model. Checked by the residual
    of pymatting's own system and by the distance to pymatting's alpha."""
    import pymatting
    from pymatting.util.util import trimap_split

    d = need_shared("data", "alphamatting")
    img = read_rgb(d / "image" / f"{image}.png")
    tri = read_trimap(d / trimap_dir / f"{image}.png", img.shape[:2])
    s = (slice(40, 200), slice(60, 260))
    img, tri = np.ascontiguousarray(img[s]), np.ascontiguousarray(tri[s])
    f_img, f_tri = img / 255.0, tri / 255.0
    got = mattecli.load_model("closed-form").predict(img, trimap=tri).alpha.astype(np.float64)
    want = np.clip(pymatting.estimate_alpha_cf(f_img, f_tri), 0, 1)
    assert np.abs(got - want).max() < 2e-3 and np.abs(got - want).mean() < 1e-5
    is_fg, _, is_known, is_unknown = trimap_split(f_tri)
    lap = pymatting.cf_laplacian(f_img, is_known=is_known)
    lu = lap[is_unknown][:, is_unknown]
    rhs = -lap[is_unknown][:, is_known].dot(is_fg[is_known])
    from mattecli.backends.classical.closed_form import solve_unknown

    x = solve_unknown(f_img, f_tri)                       # not clipped: the solve itself
    res = np.linalg.norm(lu @ x.ravel()[is_unknown] - rhs) / np.linalg.norm(rhs)
    assert res < 1e-6
    assert (got[tri == 0] == 0).all() and (got[tri == 255] == 1).all()


def test_direct_solver_edge_cases():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tri = np.zeros((20, 30), np.uint8)
    tri[:, 15:] = 255
    tri[:, 13:17] = 128
    tri[0, 0] = 128                                        # an unknown pixel in the corner
    a = mattecli.load_model("closed-form").predict(img, trimap=tri).alpha
    assert a.shape == (20, 30) and np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert (a[tri == 0] == 0).all() and (a[tri == 255] == 1).all()
    with pytest.raises(UsageError, match="solver"):
        mattecli.load_model("closed-form", solver="magic")
