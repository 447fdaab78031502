"""SAD/MSE/Grad/Conn against the official MATLAB numbers (../shared/eval_vectors), hand-checked cases and an
independent straightforward reimplementation (full 9x9 kernel, scipy labelling on the transposed mask)."""
from __future__ import annotations

import csv
import json
import math
import time

import cv2
import numpy as np
import pytest
from scipy import ndimage

from conftest import need_shared
from mattecli.evaluation import metrics as M

RTOL, ATOL = 1e-5, 1e-9
COLS = {"sad": "sad_fn_sumabs_div1000", "mse": "mse_fn_meansq", "grad": "grad_fn_sumsq", "conn": "conn_fn_sumabs"}
REPORT = {"sad": "SAD_div1000", "mse": "MSE_meansq", "grad": "Grad_div1000", "conn": "Conn_div1000"}


def _close(got, exp):
    if math.isnan(exp):
        return math.isnan(got)
    return abs(got - exp) <= max(ATOL, RTOL * abs(exp))


def _vectors():
    d = need_shared("eval_vectors")
    rows = list(csv.DictReader(open(d / "expected_octave.csv", newline="")))
    return d, rows


def _read(d, case, kind):
    return cv2.imread(str(d / f"{case}_{kind}.png"), cv2.IMREAD_UNCHANGED)


def test_shared_vectors_raw_and_reporting_units():
    d, rows = _vectors()
    assert {r["case"] for r in rows} == {"case_50", "case_51", "case_52", "case_53", "case_54"}
    for r in rows:
        P, G, T = (_read(d, r["case"], k) for k in ("pred", "gt", "trimap"))
        assert int(r["unknown_px"]) == int((T == 128).sum())
        raw = M.official_raw(P, G, T)
        rep = M.compute_all(P, G, T)
        for k in M.METRICS:
            assert _close(raw[k], float(r[COLS[k]])), (r["case"], k, raw[k], r[COLS[k]])
            assert _close(rep[k], float(r[REPORT[k]])), (r["case"], k, rep[k], r[REPORT[k]])
            # the float32 emulation is bit-exact with Octave's single-precision results
            assert np.float32(raw[k]) == np.float32(float(r[COLS[k]])), (r["case"], k)


def test_single_metric_functions_agree_with_compute_all():
    d, rows = _vectors()
    r = rows[2]
    P, G, T = (_read(d, r["case"], k) for k in ("pred", "gt", "trimap"))
    assert _close(M.sad_error(P, G, T), float(r["SAD_div1000"]))
    assert _close(M.mse_error(P, G, T), float(r["MSE_meansq"]))
    assert _close(M.gradient_error(P, G, T), float(r["Grad_div1000"]))
    assert _close(M.gradient_error(P, G, T, raw=True), float(r["grad_fn_sumsq"]))
    assert _close(M.connectivity_error(P, G, T), float(r["Conn_div1000"]))
    assert _close(M.connectivity_error(P, G, T, raw=True), float(r["conn_fn_sumabs"]))


# -- independent straightforward reference ---------------------------------------------------------------------

def _ref_kernel():
    s, eps = 1.4, 1e-2
    h = math.ceil(s * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * s * eps)))
    gauss = lambda x: math.exp(-x * x / (2 * s * s)) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    hx = np.zeros((2 * h + 1, 2 * h + 1))
    for i in range(2 * h + 1):
        for j in range(2 * h + 1):
            u, v = i - h, j - h
            hx[i, j] = gauss(u) * (-v * gauss(v) / (s * s))
    return hx / np.sqrt((hx ** 2).sum())


def _ref_metrics(P, G, T=None):
    U = np.ones(P.shape, bool) if T is None else (T == 128)
    p, g = P.astype(np.float64) / 255, G.astype(np.float64) / 255
    sad = np.abs(p - g)[U].sum() / 1000
    mse = ((p - g) ** 2)[U].sum() / U.sum() if U.any() else float("nan")
    hx = _ref_kernel()

    def amp(X):
        X = X.astype(np.float64)
        N = (X - X.min()) / (X.max() - X.min()) if X.max() > X.min() else np.zeros_like(X)
        gx = ndimage.convolve(N, hx, mode="nearest")
        gy = ndimage.convolve(N, hx.T, mode="nearest")
        return np.sqrt(gx ** 2 + gy ** 2)

    grad = ((amp(P) - amp(G)) ** 2)[U].sum()
    p32, g32 = P.astype(np.float32) / np.float32(255), G.astype(np.float32) / np.float32(255)
    lmap = -np.ones(P.shape)
    four = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    for k in range(1, 11):
        t = k / 10
        m = (p32 >= t) & (g32 >= t)
        lab, n = ndimage.label(m.T, structure=four)  # transposed: labels in column-major order
        omega = np.zeros(P.shape, bool)
        if n:
            sizes = np.bincount(lab.ravel())[1:]
            omega = (lab == int(np.argmax(sizes)) + 1).T
        lmap[(lmap == -1) & ~omega] = (k - 1) / 10
    lmap[lmap == -1] = 1
    dp, dg = p - lmap, g - lmap
    phip = 1 - dp * (dp >= 0.15)
    phig = 1 - dg * (dg >= 0.15)
    conn = np.abs(phip - phig)[U].sum()
    return {"sad": sad, "mse": mse, "grad": grad, "conn": conn}


def _random_case(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    gt = np.zeros((h, w))
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, min(h, w) / 2)
        gt = np.maximum(gt, np.clip((r - np.hypot(yy - cy, xx - cx)) / 3, 0, 1))
    G = np.rint(gt * 255).astype(np.uint8)
    G[rng.random((h, w)) < 0.02] = 153  # the float64 threshold trap
    P = np.clip(G.astype(int) + rng.normal(0, 25, (h, w)), 0, 255).astype(np.uint8)
    P[rng.random((h, w)) < 0.05] = 0
    band = cv2.dilate(((G > 0) & (G < 255)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    T = np.where(band, 128, np.where(G >= 128, 255, 0)).astype(np.uint8)
    return P, G, T


@pytest.mark.parametrize("seed", range(8))
def test_matches_straightforward_reference_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(17, 60)), int(rng.integers(17, 60))
    P, G, T = _random_case(rng, h, w)
    for tri in (T, None):
        got = M.official_raw(P, G, tri)
        ref = _ref_metrics(P, G, tri)
        for k in M.METRICS:
            assert _close(got[k], ref[k]), (seed, k, got[k], ref[k])


def test_kernel_is_the_official_9x9():
    g, dg = M.gauss_kernels(1.4)
    assert len(g) == 9
    np.testing.assert_allclose(np.outer(g, dg), _ref_kernel(), rtol=1e-12, atol=1e-15)


def test_grad_on_a_cropped_band_equals_whole_image_filtering():
    # a small unknown band far from the borders: the 4 px crop margin must give the same numbers
    rng = np.random.default_rng(3)
    P = rng.integers(0, 256, (60, 70), dtype=np.uint8)
    G = rng.integers(0, 256, (60, 70), dtype=np.uint8)
    T = np.zeros_like(P)
    T[20:30, 31:40] = 128
    T[0:2, 68:70] = 128  # and a corner patch (true image border: replicate)
    assert _close(M.official_raw(P, G, T)["grad"], _ref_metrics(P, G, T)["grad"])


# -- hand-checked tiny cases -----------------------------------------------------------------------------------

def test_identical_prediction_scores_zero():
    rng = np.random.default_rng(0)
    G = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    T = np.full_like(G, 128)
    assert M.compute_all(G, G.copy(), T) == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}
    assert M.compute_all(G, G.copy()) == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}


def test_one_pixel_difference_sad_mse():
    G = np.zeros((10, 10), np.uint8)
    P = G.copy()
    P[4, 5] = 51  # 0.2
    T = np.zeros_like(G)
    T[3:7, 3:8] = 128  # 20 unknown pixels
    r = M.compute_all(P, G, T)
    assert r["sad"] == pytest.approx(0.2 / 1000, rel=1e-6)
    assert r["mse"] == pytest.approx(0.04 / 20, rel=1e-6)
    # outside the unknown region: no SAD/MSE/Conn, but Grad still sees it through the kernel reach
    P2 = G.copy()
    P2[1, 5] = 51
    r2 = M.compute_all(P2, G, T)
    assert r2["sad"] == 0 and r2["mse"] == 0 and r2["conn"] == 0 and r2["grad"] > 0
    # whole-image mode: divides by all 100 pixels
    r3 = M.compute_all(P, G)
    assert r3["mse"] == pytest.approx(0.04 / 100, rel=1e-6)


def test_unknown_is_exactly_128():
    G = np.zeros((4, 4), np.uint8)
    P = np.full((4, 4), 255, np.uint8)
    T = np.array([[127, 128, 129, 0]] * 4, np.uint8)
    assert M.compute_all(P, G, T)["sad"] == pytest.approx(4 / 1000, rel=1e-6)


def test_no_unknown_pixels_gives_nan_mse_and_zero_others():
    G = np.zeros((8, 8), np.uint8)
    r = M.compute_all(G + 9, G, np.zeros_like(G))
    assert math.isnan(r["mse"]) and r["sad"] == 0 and r["grad"] == 0 and r["conn"] == 0


def test_grad_per_image_mat2gray_and_constant_and_inversion():
    rng = np.random.default_rng(1)
    G = rng.integers(0, 256, (30, 30), dtype=np.uint8)
    G[0, 0], G[0, 1] = 0, 255
    T = np.full_like(G, 128)
    # a stretched copy has the same normalised image -> zero gradient error
    Pstretch = (G.astype(np.float64) * 200 / 255 + 20).round().astype(np.uint8)
    assert M.gradient_error(Pstretch, G, T) < M.gradient_error(G // 2 + 1, G // 3, T)
    # inversion: |grad N| is invariant under alpha -> 1 - alpha
    assert M.gradient_error(255 - G, G, T) == 0.0
    # constant prediction: zero gradient map, error = sum |grad g|^2
    r = M.gradient_error(np.full_like(G, 77), G, T, raw=True)
    assert r == pytest.approx(_ref_metrics(np.full_like(G, 77), G, T)["grad"], rel=1e-6)


def _conn(P, G):
    return M.connectivity_error(np.array(P, np.uint8), np.array(G, np.uint8), None, raw=True)


def test_conn_background_is_not_a_component():
    # the 255-run (3 px) is smaller than the 0-run (4 px): counting the background as a component would give
    # l = 0 for the differing pixel (|p - g| = 0.549); the official code keeps it until t = 0.4 -> 0.6
    P = [[255, 255, 115, 0, 0, 0, 0]]
    G = [[255, 255, 255, 0, 0, 0, 0]]
    assert _conn(P, G) == pytest.approx(0.6, abs=1e-6)


def test_conn_is_4_connected():
    # the differing pixel touches the big component only diagonally: 4-conn -> l = 0 -> 140/255
    P = [[255, 255, 255, 0], [0, 0, 0, 115]]
    G = [[255, 255, 255, 0], [0, 0, 0, 255]]
    assert _conn(P, G) == pytest.approx(140 / 255, abs=1e-6)
    # 4-adjacent instead: it stays in the component up to t = 0.4 -> 0.6
    P = [[255, 255, 255, 115], [0, 0, 0, 0]]
    G = [[255, 255, 255, 255], [0, 0, 0, 0]]
    assert _conn(P, G) == pytest.approx(0.6, abs=1e-6)


def test_conn_thresholds_are_float32_not_float64():
    # p = 153/255 passes t = 0.6 (float32), so l = 0.6 and the term is 1 - 0.6 = 0.4 (float64 arange: 0.5)
    P = [[255, 255, 255, 153, 0]]
    G = [[255, 255, 255, 255, 0]]
    assert _conn(P, G) == pytest.approx(0.4, abs=1e-6)


def test_conn_empty_intersection_is_guarded():
    # an all-zero prediction empties every intersection: l = 0 everywhere; phi_p = 1, phi_g = 1 - g [g >= .15]
    P = [[0, 0, 0, 0]]
    G = [[255, 26, 38, 0]]  # 0.102 and 0.149 stay below 0.15
    assert _conn(P, G) == pytest.approx(1.0, abs=1e-6)
    G2 = [[255, 39, 128, 0]]  # 39/255 = 0.153 crosses
    assert _conn(P, G2) == pytest.approx(1 + 39 / 255 + 128 / 255, abs=1e-6)


def test_conn_tie_goes_to_the_column_major_first_component():
    # two 2-px components: row-major lists the right one first, column-major (bwconncomp) the left one
    P = [[0, 0, 255, 115, 0], [255, 255, 0, 0, 0]]
    G = [[0, 0, 255, 255, 0], [255, 255, 0, 0, 0]]
    assert _conn(P, G) == pytest.approx(140 / 255, abs=1e-6)
    # mirror it: now the component holding the differing pixel comes first in column-major order
    P2 = np.fliplr(np.array(P, np.uint8))
    G2 = np.fliplr(np.array(G, np.uint8))
    assert _conn(P2, G2) == pytest.approx(0.6, abs=1e-6)


def test_input_conversions():
    G = np.zeros((6, 6), np.uint8)
    G[2:4, 2:4] = 255
    f = G.astype(np.float32) / 255
    assert M.compute_all(f, G)["sad"] == 0
    assert M.compute_all(G.astype(np.uint16) * 257, G)["sad"] == 0
    assert M.compute_all(np.dstack([G, G, G]), G)["sad"] == 0
    with pytest.raises(ValueError, match="prediction is 7x6"):
        M.compute_all(np.zeros((6, 7), np.uint8), G)
    with pytest.raises(ValueError, match="trimap"):
        M.compute_all(G, G, np.zeros((5, 6), np.uint8))


def test_1080p_is_fast():
    rng = np.random.default_rng(0)
    H, W = 1080, 1920
    yy, xx = np.mgrid[0:H, 0:W]
    g = np.clip((1 - ((xx - 960) / 600) ** 2 - ((yy - 540) / 400) ** 2) * 4, 0, 1)
    G = (cv2.GaussianBlur(g, (0, 0), 2) * 255).astype(np.uint8)
    P = np.clip(G + rng.normal(0, 5, G.shape), 0, 255).astype(np.uint8)
    T = np.where((G > 0) & (G < 255), 128, G).astype(np.uint8)
    T = np.where(cv2.dilate((T == 128).astype(np.uint8), np.ones((21, 21))) > 0, 128, T).astype(np.uint8)
    best = min(_timed(P, G, T) for _ in range(2))
    # target 0.42 s on the reference machine (measured ~0.15-0.2 s); generous here for shared CI cores
    assert best < 2.0, best


def _timed(P, G, T):
    t = time.perf_counter()
    M.compute_all(P, G, T)
    return time.perf_counter() - t


# -- the unknown region: 128 as stored, other greys refused, --unknown-values, rows left out ----------------------

def test_trimap_with_another_unknown_grey_is_refused_naming_the_value_and_the_fix():
    from mattecli.errors import InputError
    from mattecli.evaluation.unknown import scored_trimap

    T = np.zeros((8, 8), np.uint8)
    T[2:6, 2:6] = 102
    T[3:5, 3:5] = 255
    with pytest.raises(InputError) as ei:
        scored_trimap(T, None, "tri/a.png")
    msg = str(ei.value)
    assert msg.startswith("tri/a.png: unknown is 102 here: the official metrics count only 128 as unknown")
    assert "mattecli trimap --from-alpha" in msg and msg.endswith("or pass --unknown-values 102")
    T[0, 0] = 64
    assert "unknown is one of 64, 102 here" in str(pytest.raises(InputError, scored_trimap, T, None, "t").value)
    soft = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3 + 1              # a soft matte given as a trimap
    assert "is this a trimap?" in str(pytest.raises(InputError, scored_trimap, soft, None, "t").value)
    # stored with 128: as is (127/129 stay known); only 0 and 255: no error (nothing to score)
    T2 = np.array([[0, 127, 128, 129, 255]], np.uint8)
    assert scored_trimap(T2, None, "t") is not None and (scored_trimap(T2, None, "t") == T2).all()
    assert (scored_trimap(np.array([[0, 255]], np.uint8), None, "t") == [[0, 255]]).all()


def test_unknown_values_select_the_region():
    from mattecli.errors import InputError, UsageError
    from mattecli.evaluation.unknown import describe, parse_unknown_values, scored_trimap

    assert parse_unknown_values(None) is None and parse_unknown_values(" ") is None
    assert parse_unknown_values("102, 128,102") == (102, 128) and parse_unknown_values([64]) == (64,)
    for bad in ("x", "300", "-1", "1.5"):
        with pytest.raises(UsageError, match="--unknown-values"):
            parse_unknown_values(bad)
    assert describe(None) == "trimap == 128" and describe((102, 128)) == "trimap in {102, 128}"
    T = np.array([[0, 102, 128, 255]], np.uint8)
    assert scored_trimap(T, (102,), "t").tolist() == [[0, 128, 0, 0]]          # 128 is known now
    assert scored_trimap(T, (102, 128), "t").tolist() == [[0, 128, 128, 0]]
    with pytest.raises(InputError, match="unknown is 128 here: --unknown-values counts only 64 as unknown"):
        scored_trimap(T[:, 2:], (64,), "t")
    G = np.zeros((1, 4), np.uint8)
    P = np.full((1, 4), 255, np.uint8)
    assert M.compute_all(P, G, scored_trimap(T, (102,), "t"))["sad"] == pytest.approx(1 / 1000, rel=1e-6)


def test_images_without_unknown_pixels_are_left_out_of_every_mean():
    from mattecli.evaluation import report as rp
    from mattecli.evaluation.runner import score_arrays

    G = np.zeros((8, 8), np.uint8)
    G[2:6, 2:6] = 255
    T = np.full((8, 8), 128, np.uint8)
    scored = score_arrays("a", G // 2, G, T)
    empty = score_arrays("b", G // 3, G, np.where(G > 0, 255, 0).astype(np.uint8))
    assert empty["left_out"] == "no unknown pixels" and all(empty[k] is None for k in M.METRICS)
    assert "left_out" not in scored and scored["sad"] > 0
    assert "error" in score_arrays("c", G, G, np.where(G > 0, 255, 102).astype(np.uint8))
    rep = rp.build([scored, empty], [], M.METRICS, "folders", region="trimap == 128")
    assert rep["left_out"] == 1 and rep["count"] == 2
    for k in M.METRICS:                                                      # SAD, Grad, Conn alike, not only MSE
        assert rep["mean"][k] == scored[k]
    assert rp.left_out_note(rep) == "1 of 2 images left out of every mean: no unknown pixels (trimap == 128)"
    assert rp.build([scored], [], M.METRICS, "folders")["left_out"] == 0
    assert "left_out" in rp.to_csv(rep).splitlines()[0]
    assert json.loads(rp.to_json(rep))["images"][1]["sad"] is None
