"""Pairing by stem, Composition-1k pairing/compositing, the trimap recipe, dtSSD/MESSDdt on tiny sequences."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mattecli.errors import InputError, UsageError
from mattecli.evaluation import datasets as D
from mattecli.evaluation import metrics as M
from mattecli.evaluation import pairing as PA


def _touch(p, arr=None):
    p.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(p), np.zeros((4, 4), np.uint8) if arr is None else arr)


def test_pair_folders_by_stem_any_extension(tmp_path):
    for n in ("a.png", "b.png", "c10.png", "c9.png"):
        _touch(tmp_path / "gt" / n)
    for n in ("a.jpg", "c9.png", "c10.bmp", "z.png"):
        _touch(tmp_path / "pred" / n)
    (tmp_path / "pred" / "notes.txt").write_text("x")
    items = PA.pair_folders(tmp_path / "pred", tmp_path / "gt")
    assert [i.relstem for i in items] == ["a", "b", "c9", "c10", "z"]  # natural order
    by = {i.relstem: i for i in items}
    assert by["a"].partners["pred"].name == "a.jpg" and by["a"].problem is None
    assert by["a"].path == by["a"].partners["pred"] and by["a"].partners["gt"].name == "a.png"
    assert "no prediction named b" in by["b"].problem
    assert "no ground truth named z" in by["z"].problem
    with pytest.raises(UsageError, match="nope"):
        PA.pair_folders(tmp_path / "pred", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no prediction images"):
        PA.pair_folders(tmp_path / "empty", tmp_path / "gt")


def test_duplicate_stems_are_errors(tmp_path):
    _touch(tmp_path / "gt" / "a.png")
    _touch(tmp_path / "pred" / "a.png")
    _touch(tmp_path / "pred" / "a.jpg")
    items = PA.pair_folders(tmp_path / "pred", tmp_path / "gt")
    assert len(items) == 1 and items[0].relstem == "a" and "pred" not in items[0].partners
    assert "2 prediction files match" in items[0].problem and "a.png" in items[0].problem
    assert "a.jpg" in items[0].problem
    # two ground truths with the same base name
    _touch(tmp_path / "gt" / "a_gt.png")
    items = PA.pair_folders(tmp_path / "pred", tmp_path / "gt")
    assert sum(1 for i in items if i.problem and "same name" in i.problem and "a_gt.png" in i.problem) == 1


def test_pairing_uses_the_suffixes_the_other_verbs_write(tmp_path):
    # `matte` writes STEM_alpha.png (and other types next to it), `trimap` writes STEM_trimap.png
    for n in ("GT01", "GT02", "GT03"):
        _touch(tmp_path / "gt" / f"{n}.png")
        _touch(tmp_path / "tri" / f"{n}_trimap.png")
    _touch(tmp_path / "pred" / "GT01_alpha.png")
    _touch(tmp_path / "pred" / "GT01_foreground.png")   # ignored: not a prediction
    _touch(tmp_path / "pred" / "GT02_matte.png")
    _touch(tmp_path / "pred" / "GT03.png")
    _touch(tmp_path / "pred" / "orphan_alpha.png")
    items = PA.pair_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "tri")
    by = {i.relstem: i for i in items}
    assert sorted(by) == ["GT01", "GT02", "GT03", "orphan"]
    assert by["GT01"].partners["pred"].name == "GT01_alpha.png"
    assert by["GT01"].partners["trimap"].name == "GT01_trimap.png"
    assert by["GT02"].partners["pred"].name == "GT02_matte.png" and by["GT03"].partners["pred"].name == "GT03.png"
    assert all(by[n].problem is None for n in ("GT01", "GT02", "GT03"))
    assert "no ground truth named orphan" in by["orphan"].problem
    # ground truth named STEM_gt / STEM_alpha: the item is STEM; suffix matching ignores case
    _touch(tmp_path / "gt2" / "x_gt.png")
    _touch(tmp_path / "gt2" / "y_ALPHA.png")
    _touch(tmp_path / "p2" / "x_alpha.png")
    _touch(tmp_path / "p2" / "y_alpha.png")
    items = PA.pair_folders(tmp_path / "p2", tmp_path / "gt2")
    assert [(i.relstem, i.problem) for i in items] == [("x", None), ("y", None)]
    # two candidates (STEM.png and STEM_alpha.png) is an error for that item, naming both
    _touch(tmp_path / "pred" / "GT03_alpha.png")
    _touch(tmp_path / "tri" / "GT02.png")
    items = PA.pair_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "tri")
    by = {i.relstem: i for i in items}
    assert "2 prediction files match" in by["GT03"].problem and "GT03_alpha.png" in by["GT03"].problem
    assert "2 trimap files match" in by["GT02"].problem
    assert "GT03_alpha" not in by and by["GT01"].problem is None
    # a missing trimap names both accepted spellings
    (tmp_path / "tri" / "GT01_trimap.png").unlink()
    by = {i.relstem: i for i in PA.pair_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "tri")}
    assert "no trimap named GT01.* or GT01_trimap.*" in by["GT01"].problem


def test_pairing_with_gt_and_trimaps_in_one_folder(tmp_path):
    for n in ("a", "b"):
        _touch(tmp_path / "am" / f"{n}.png")
        _touch(tmp_path / "am" / f"{n}_trimap.png")
        _touch(tmp_path / "out" / f"{n}_alpha.png")
    items = PA.pair_folders(tmp_path / "out", tmp_path / "am", tmp_path / "am")
    assert [(i.relstem, i.problem) for i in items] == [("a", None), ("b", None)]
    assert items[0].partners["gt"].name == "a.png" and items[0].partners["trimap"].name == "a_trimap.png"
    with pytest.raises(UsageError, match="same folder"):
        PA.pair_folders(tmp_path / "am", tmp_path / "am")


def test_model_inputs_pair_with_suffixes(tmp_path):
    for n in ("0001_img", "0002_img"):
        _touch(tmp_path / "img" / f"{n}.png")
    _touch(tmp_path / "gt" / "0001.png")
    _touch(tmp_path / "gt" / "0002_alpha.png")
    _touch(tmp_path / "tri" / "0001_img_trimap.png")
    _touch(tmp_path / "tri" / "0002_trimap.png")
    _touch(tmp_path / "bg" / "0001_back.png")
    _touch(tmp_path / "bg" / "0002_img.png")
    items = PA.pair_model_inputs(tmp_path / "img", tmp_path / "gt", tmp_path / "tri", tmp_path / "bg")
    assert [(i.relstem, i.problem) for i in items] == [("0001_img", None), ("0002_img", None)]
    assert items[1].partners["alpha"].name == "0002_alpha.png"
    assert items[1].partners["trimap"].name == "0002_trimap.png"
    assert items[0].partners["bg"].name == "0001_back.png"


def test_read_alpha_channels_and_depths(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "g.png"), a)
    cv2.imwrite(str(tmp_path / "g16.png"), a.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.dstack([np.zeros_like(a), np.zeros_like(a), a]))  # BGR: R = a
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([np.zeros_like(a)] * 3 + [a]))
    for n in ("g", "g16", "rgb", "rgba"):
        np.testing.assert_array_equal(D.read_alpha(tmp_path / f"{n}.png"), a)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.png"):
        D.read_alpha(tmp_path / "bad.png")
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(InputError, match="zero.png: empty file") as e:
        D.read_alpha(tmp_path / "zero.png")
    assert "PNG" not in str(e.value)


def test_composition_pairing_is_deterministic(tmp_path):
    for n in ("f2", "f1"):
        _touch(tmp_path / "fg" / f"{n}.png")
        _touch(tmp_path / "al" / f"{n}.png")
    for j in range(5):
        _touch(tmp_path / "bg" / f"b{j}.png")
    items = PA.pairs_composition(tmp_path / "fg", tmp_path / "al", tmp_path / "bg", 3)
    assert [i.relstem for i in items] == ["f1_0", "f1_1", "f1_2", "f2_3", "f2_4", "f2_5"]
    assert [i.partners["bg"].name for i in items] == ["b0.png", "b1.png", "b2.png", "b3.png", "b4.png", "b0.png"]
    assert [i.path.name for i in items[:3]] == ["f1.png"] * 3 and items[0].partners["alpha"].name == "f1.png"


def test_background_cover_and_composite():
    bg = np.zeros((10, 20, 3), np.uint8)
    bg[:, :10] = 100
    out = D.fit_background_cover(bg, 30, 30)  # ratio 3 -> 60x30 (w x h), top-left 30x30
    assert out.shape == (30, 30, 3)
    big = np.arange(50 * 60 * 3, dtype=np.uint32).reshape(50, 60, 3).astype(np.uint8)
    np.testing.assert_array_equal(D.fit_background_cover(big, 20, 30), big[:20, :30])  # larger: crop only
    fg = np.zeros((2, 2, 3), np.uint8)
    a = np.array([[0, 255], [128, 65]], np.uint8)
    comp = D.composite(fg, a, np.full((2, 2, 3), 255, np.uint8))
    # black over white: (1 - a) * 255 in float32, truncated like DIM's composite4 (127 -> 126, 190 -> 189)
    np.testing.assert_array_equal(comp[..., 0], [[255, 0], [126, 189]])


def test_trimap_recipe():
    a = np.zeros((40, 40), np.uint8)
    a[10:30, 10:30] = 255
    a[10:30, 9] = 100
    t = D.gt_trimap(a, radius=3)
    assert set(np.unique(t)) == {0, 128, 255}
    assert t[20, 20] == 255 and t[0, 0] == 0
    assert t[20, 9] == 128 and t[20, 6] == 128 and t[20, 5] == 0  # dilate(alpha>0) by 3 from column 9
    assert t[20, 12] == 128 and t[20, 13] == 255  # erode(alpha==255) by 3 from column 10
    np.testing.assert_array_equal(D.gt_trimap(a, 0) == 128, (a > 0) & (a < 255))
    with pytest.raises(UsageError, match="trimap-radius"):
        D.gt_trimap(a, -1)


def test_dtssd_hand_values():
    z = np.zeros((2, 2), np.uint8)
    one = z.copy()
    one[1, 1] = 255
    assert M.dtssd_sequence([z, one, one], [z, z, z]) == [0.0, pytest.approx(50.0), 0.0]
    # a prediction that follows the ground truth's change exactly has no temporal error
    assert M.dtssd_sequence([z, one], [z, one]) == [0.0, 0.0]
    # half the pixels off by 0.2 in the temporal derivative: sqrt(2*0.04/4)*100
    p1 = np.array([[51, 51], [0, 0]], np.uint8)
    assert M.dtssd_sequence([z, p1], [z, z])[1] == pytest.approx(np.sqrt(2 * 0.04 / 4) * 100, rel=1e-6)


def test_messddt_hand_values_with_explicit_flow():
    z = np.zeros((2, 3), np.uint8)
    p1 = z.copy()
    p1[0, 2] = 255  # E_1 = 1 at (0, 2)
    flow0 = np.zeros((2, 3, 2), np.float32)
    assert M.messddt_sequence([z, p1], [z, z], [flow0]) == [pytest.approx(1 / 6 * 1000)]
    flow = flow0.copy()
    flow[..., 0] = 1.0  # everything moves one pixel right: (0,1) and (0,2) (clamped) both sample E_1(0,2)
    assert M.messddt_sequence([z, p1], [z, z], [flow]) == [pytest.approx(2 / 6 * 1000)]
    flow[..., 0] = 0.0
    flow[..., 1] = 0.6  # rounds to one pixel down: rows 0 and 1 sample row 1 (clamped): E_1 there is 0
    assert M.messddt_sequence([z, p1], [z, z], [flow]) == [0.0]
    # default flow (Farneback on a static GT) is zero motion
    assert M.messddt_sequence([z, p1], [z, z]) == [pytest.approx(1 / 6 * 1000)]


def test_video_metrics_summary():
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 256, (12, 16), dtype=np.uint8) for _ in range(3)]
    r = M.video_metrics(gts, [g.copy() for g in gts])
    assert r == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "dtssd": 0.0, "messddt": 0.0, "frames": 3}
    with pytest.raises(ValueError, match="frames"):
        M.video_metrics(gts[:2], gts)


def test_gt_trimap_is_the_dilate_erode_recipe():
    """gt_trimap (the one trimap rule of imaging.trimap, lo=0, hi=1) equals the documented recipe written out."""
    def recipe(a, r):
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        fg, anyfg = (a == 255).astype(np.uint8), (a > 0).astype(np.uint8)
        if r:
            fg = cv2.erode(fg, k, borderType=cv2.BORDER_REPLICATE)
            anyfg = cv2.dilate(anyfg, k, borderType=cv2.BORDER_REPLICATE)
        t = np.full(a.shape, 128, np.uint8)
        t[anyfg == 0] = 0
        t[fg == 1] = 255
        return t

    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = rng.integers(1, 30, 2)
        a = rng.choice(np.array([0, 255, 77], np.uint8), size=(h, w), p=[0.45, 0.45, 0.1])
        if trial % 3 == 0:
            a = np.where(rng.random((h, w)) < 0.97, 255, 0).astype(np.uint8)
        for r in (0, 1, 2, 4, 10):
            np.testing.assert_array_equal(D.gt_trimap(a, r), recipe(a, r), err_msg=f"{trial} r={r}")


def test_nested_folders_pair_by_relative_stem(tmp_path):
    for sub in ("s1", "s2"):
        _touch(tmp_path / "gt" / sub / "a.png")
        _touch(tmp_path / "pred" / sub / "a_alpha.png")
    _touch(tmp_path / "gt" / "s3" / "b.png")
    _touch(tmp_path / "pred" / "b.png")                 # flat prediction for a nested ground truth: by stem
    (tmp_path / "pred" / ".hidden.png").write_bytes(b"")  # hidden files are never inputs
    items = PA.pair_folders(tmp_path / "pred", tmp_path / "gt")
    assert [(i.relstem, i.problem) for i in items] == [("s1/a", None), ("s2/a", None), ("s3/b", None)]
    assert [i.partners["pred"].relative_to(tmp_path / "pred").as_posix() for i in items] == [
        "s1/a_alpha.png", "s2/a_alpha.png", "b.png"]
    # the same stem in two prediction sub-folders is ambiguous for a ground truth that has neither's path
    _touch(tmp_path / "gt" / "c.png")
    for sub in ("x", "y"):
        _touch(tmp_path / "pred" / sub / "c.png")
    by = {i.relstem: i for i in PA.pair_folders(tmp_path / "pred", tmp_path / "gt")}
    assert "2 prediction files match" in by["c"].problem


def test_read_alpha_applies_exif_orientation(tmp_path):
    from PIL import Image

    a = np.zeros((2, 3), np.uint8)
    a[0, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
    np.testing.assert_array_equal(D.read_alpha(tmp_path / "o.png"), np.rot90(a, -1))


def test_truncated_video_sequence_is_an_error(tmp_path):
    """A ground-truth or predicted video cut short (Matroska: FFmpeg reads it quietly to the cut) is refused."""
    import av

    from mattecli.errors import InputError
    from mattecli.evaluation.sequences import read_video_alpha

    full = tmp_path / "full.mkv"
    out = av.open(str(full), "w")
    vs = out.add_stream("libx264", rate=25)
    vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
    vs.options = {"preset": "ultrafast", "g": "10", "x264-params": "log-level=error"}
    rng = np.random.default_rng(0)
    for i in range(60):
        f = av.VideoFrame.from_ndarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), format="rgb24")
        f.pts = i
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode(None):
        out.mux(p)
    out.close()
    assert len(read_video_alpha(str(full))) == 60
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.mkv: only \d+ of the container's 60 frames decode; a truncated"):
        read_video_alpha(str(cut))
