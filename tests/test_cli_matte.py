"""`mattecli matte` end to end: outputs, alpha modes, pairing, --model auto, bad inputs, batch flags, subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foundation_helpers import ROOT, invoke, no_temp_files, one_line_error, small_example, write_example
from mattecli.imaging.io import read_grey, read_image, read_png_text, write_image


@pytest.fixture
def ex(tmp_path):
    return write_example(tmp_path / "data", parts=("image", "trimap", "alpha", "fg"))


def test_all_output_types_and_alpha_equals_pymatting(tmp_path, ex):
    import pymatting

    out = tmp_path / "out"
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", out, "--model", "closed-form",
               "-T", "alpha,foreground,rgba,composite", "--composite-bg", "#00ff00")
    assert r.exit_code == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["hair_alpha.png", "hair_composite.png", "hair_foreground.png", "hair_rgba.png"]
    assert r.stdout.split() == [str(out / f"hair_{t}.png") for t in ("alpha", "foreground", "rgba", "composite")]
    ex_arrays = small_example()
    img = ex_arrays["hair"] / 255.0
    tri = ex_arrays["hair_trimap"] / 255.0
    want = np.clip(pymatting.estimate_alpha_cf(img, tri), 0, 1)
    got = read_image(out / "hair_alpha.png")
    np.testing.assert_array_equal(got, (want * 255 + 0.5).astype(np.uint8))
    rgba = read_image(out / "hair_rgba.png")
    assert rgba.shape[2] == 4 and read_png_text(out / "hair_rgba.png")["alpha-mode"] == "straight"
    np.testing.assert_array_equal(rgba[..., 3], got)
    comp = read_image(out / "hair_composite.png")
    bgmask = got == 0
    assert bgmask.any() and (comp[bgmask] == [0, 255, 0]).all()


def test_premultiplied_rgba_and_16bit(tmp_path, ex):
    out = tmp_path / "out"
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", out, "-T", "rgba,foreground",
               "--premultiplied", "--bits", "16", "--estimate", "ml", "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    rgba = read_image(out / "hair_rgba.png")
    fg = read_image(out / "hair_foreground.png")
    assert rgba.dtype == np.uint16 and read_png_text(out / "hair_rgba.png")["alpha-mode"] == "premultiplied"
    a = rgba[..., 3:4] / 65535.0
    np.testing.assert_allclose(rgba[..., :3] / 65535.0, fg / 65535.0 * a, atol=2 / 65535)


def test_model_auto_says_which_and_trimap_folder_pairing(tmp_path, isolated_home):
    d = tmp_path / "imgs"
    write_example(d, name="one", parts=("image",))
    write_example(d / "sub", name="two", seed=4, parts=("image",))
    write_example(tmp_path / "tris", name="one", parts=("trimap",))
    write_example(tmp_path / "tris" / "sub", name="two", seed=4, parts=("trimap",))
    r = invoke("matte", d, "--trimap", tmp_path / "tris", "-o", tmp_path / "out", "--report", tmp_path / "r.csv")
    assert r.exit_code == 0, r.stderr
    assert "--model auto: using closed-form" in r.stderr
    assert (tmp_path / "out" / "one_alpha.png").is_file() and (tmp_path / "out" / "sub" / "two_alpha.png").is_file()
    assert "closed-form" in (tmp_path / "r.csv").read_text()


def test_model_auto_without_trimap_is_a_usage_error(tmp_path, ex, isolated_home):
    r = invoke("matte", ex["image"], "-o", tmp_path / "out")
    assert r.exit_code == 2
    line = one_line_error(r)
    assert "--trimap" in line and "fetch" in line


def test_trimap_model_without_trimap_and_unknown_model(tmp_path, ex):
    r = invoke("matte", ex["image"], "-o", tmp_path / "out", "--model", "knn")
    assert r.exit_code == 2 and "needs a trimap" in one_line_error(r)
    r = invoke("matte", ex["image"], "-o", tmp_path / "out", "--model", "closed-frm", "--trimap", ex["trimap"])
    assert r.exit_code == 2 and "closed-form" in one_line_error(r)
    r = invoke("matte", ex["image"], "-o", tmp_path / "out", "--trimap", ex["trimap"], "-T", "alpha,bogus")
    assert r.exit_code == 2 and "--output-type" in one_line_error(r)
    r = invoke("matte", ex["image"], "-o", tmp_path / "out", "--trimap", ex["trimap"], "--format", "jpg")
    assert r.exit_code == 2 and "jpg" in one_line_error(r)
    assert not (tmp_path / "out").exists()


def _bad_case(tmp_path, ex, kind):
    """Returns (args, the offending file)."""
    d = tmp_path / "case"
    d.mkdir()
    img = d / "hair.png"
    img.write_bytes(ex["image"].read_bytes())
    tri = d / "hair_trimap.png"
    tri.write_bytes(ex["trimap"].read_bytes())
    if kind == "empty":
        img.write_bytes(b"")
        bad = img
    elif kind == "truncated":
        img.write_bytes(ex["image"].read_bytes()[:300])
        bad = img
    elif kind == "not_image":
        img.write_text("this is text")
        bad = img
    elif kind == "trimap_size":
        t = read_image(ex["trimap"])
        write_image(tri, t[:-3])
        bad = tri
    elif kind == "trimap_rgba":
        t = read_image(ex["trimap"])
        rgba = np.dstack([t, t, t, np.where(t == 128, 0, 255).astype(np.uint8)])
        write_image(tri, rgba)
        bad = tri
    elif kind == "trimap_no_unknown":
        t = read_image(ex["trimap"])
        write_image(tri, np.where(t >= 128, 255, 0).astype(np.uint8))
        bad = tri
    return ["matte", img, "--trimap", tri, "-o", tmp_path / "out"], bad


@pytest.mark.parametrize("kind", ["empty", "truncated", "not_image", "trimap_size", "trimap_rgba", "trimap_no_unknown"])
def test_bad_inputs_one_line_nonzero_no_partial(tmp_path, ex, kind):
    args, bad = _bad_case(tmp_path, ex, kind)
    r = invoke(*args)
    assert r.exit_code == 1, r.stderr
    line = one_line_error(r)
    assert str(bad) in line
    assert r.stdout == ""
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_unwritable_output_folder(tmp_path, ex):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", blocker / "out")
    assert r.exit_code == 2                   # found before the model runs: a usage error naming the way out
    assert str(blocker) in one_line_error(r) and "choose another -o" in one_line_error(r)
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", blocker)
    assert r.exit_code == 2 and "not a folder" in one_line_error(r)
    assert blocker.read_text() == "a file, not a folder"


def test_output_equal_to_input_is_refused(tmp_path, ex):
    before = ex["image"].read_bytes()
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", ex["image"].parent, "--template", "{relpath}.{ext}")
    assert r.exit_code == 2 and "overwrite the input" in one_line_error(r)
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", ex["image"])
    assert r.exit_code == 2
    assert ex["image"].read_bytes() == before


def test_batch_continues_fail_fast_resume_report_json(tmp_path):
    d = tmp_path / "in"
    write_example(d, name="a", parts=("image", "trimap"))
    write_example(d, name="c", seed=5, parts=("image", "trimap"))
    (d / "b.png").write_bytes(b"")
    write_example(tmp_path / "t", name="b", parts=("trimap",))
    (d / "b_trimap.png").write_bytes((tmp_path / "t" / "b_trimap.png").read_bytes())
    out = tmp_path / "out"
    r = invoke("matte", d, "--trimap", d, "-o", out, "--model", "cf", "--report", tmp_path / "run.json")
    assert r.exit_code == 1
    rep = json.loads((tmp_path / "run.json").read_text())
    assert [(Path(i["input"]).name, i["status"]) for i in rep["items"]] == [("a.png", "ok"), ("b.png", "failed"), ("c.png", "ok")]
    assert "empty file" in rep["items"][1]["error"] and rep["items"][0]["seconds"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["a_alpha.png", "c_alpha.png"] and no_temp_files(out)

    r = invoke("matte", d, "--trimap", d, "-o", tmp_path / "ff", "--model", "cf", "--fail-fast", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert [i["status"] for i in doc["items"]] == ["ok", "failed", "not-run"] and doc["summary"]["total"] == 3
    assert doc["summary"]["not_run"] == 1

    (d / "b.png").unlink()
    (d / "b_trimap.png").unlink()
    (out / "c_alpha.png").write_bytes((out / "c_alpha.png").read_bytes()[:40])  # damaged: refused, named
    r = invoke("matte", d, "--trimap", d, "-o", out, "--model", "cf", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert [i["status"] for i in doc["items"]] == ["skipped", "failed"]
    assert "c_alpha.png exists but is incomplete" in doc["items"][1]["error"]
    r = invoke("matte", d, "--trimap", d, "-o", out, "--model", "cf", "--overwrite", "--json")
    assert r.exit_code == 0, r.stderr
    assert [i["status"] for i in json.loads(r.stdout)["items"]] == ["ok", "ok"]
    assert read_grey(out / "c_alpha.png").shape == (48, 48)


def test_unpaired_inputs_are_item_errors(tmp_path):
    """A missing trimap fails that input only: the others are matted, the report lists it, exit 1 at the end."""
    d = tmp_path / "in"
    for n in ("x", "y", "z"):
        write_example(d, name=n, parts=("image",))
    write_example(tmp_path / "tri", name="y", parts=("trimap",))
    r = invoke("matte", d, "--trimap", tmp_path / "tri", "-o", tmp_path / "out", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    status = {Path(i["input"]).name: (i["status"], i["error"]) for i in doc["items"]}
    assert status["y.png"][0] == "ok" and (tmp_path / "out" / "y_alpha.png").is_file()
    for n in ("x.png", "z.png"):
        assert status[n][0] == "failed" and "--trimap" in status[n][1] and n in status[n][1]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("mattecli: error:")]
    assert len(errors) == 2 and all("no trimap" in ln for ln in errors)


def test_tta_and_option(tmp_path, ex):
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", tmp_path / "o", "--tta", "--model", "cf",
               "--option", "epsilon=1e-6", "-v")
    assert r.exit_code == 0, r.stderr
    r = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", tmp_path / "o", "--model", "lkm",
               "--option", "nonsense=1")
    assert r.exit_code == 2 and "unknown option" in one_line_error(r)


def test_subprocess_python_m(tmp_path, ex):
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.run([sys.executable, "-m", "mattecli", "matte", str(ex["image"]), "--trimap", str(ex["trimap"]),
                        "-o", str(tmp_path / "out"), "--model", "closed-form", "-T", "alpha,rgba"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(tmp_path / "out" / "hair_alpha.png"), str(tmp_path / "out" / "hair_rgba.png")]
    assert "\x1b[" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "mattecli", "matte", str(tmp_path / "missing.png"), "-o",
                        str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "missing.png" in p.stderr


# --- --model auto and model-predicted foregrounds, with fake registry entries -------------------------------
from mattecli.backends.base import Backend, Prediction  # noqa: E402
from mattecli.registry import ModelEntry, Weights  # noqa: E402


class FakeFGModel(Backend):
    """Trimap-free model predicting alpha 0.5 everywhere and a pure red foreground."""

    def predict_batch(self, batch):
        import torch

        n, _, h, w = batch.image.shape
        fg = torch.zeros((n, 3, h, w))
        fg[:, 0] = 1.0
        return Prediction(alpha=torch.full((n, 1, h, w), 0.5), foreground=fg)

    def __init__(self, entry, wset=None, weights=None, device=None, precision=None, **options):
        super().__init__(entry, wset, **options)


@pytest.fixture
def fake_entries(monkeypatch):
    from mattecli import registry

    registry._load()
    w = Weights(tag="v1", filename="fake.pth")
    tri = ModelEntry(name="faketri", family="test", summary="t", requires=frozenset({"trimap"}), quality=90,
                     adapter="test_cli_matte:FakeFGModel", weights=(w,))
    free = ModelEntry(name="fakefree", family="test", summary="t", quality=90, outputs=("alpha", "foreground"),
                      adapter="test_cli_matte:FakeFGModel", weights=(w,))
    monkeypatch.setitem(registry._ENTRIES, "faketri", tri)
    monkeypatch.setitem(registry._ENTRIES, "fakefree", free)
    return tri, free


def _cache(entry):
    from mattecli.weights import cache_dir

    d = cache_dir(entry, entry.weights[0])
    d.mkdir(parents=True, exist_ok=True)
    (d / entry.weights[0].filename).write_bytes(b"x")


def test_pick_auto_prefers_cached_high_quality(isolated_home, fake_entries):
    from mattecli.choose import pick_auto
    from mattecli.errors import UsageError

    tri, free = fake_entries
    assert pick_auto(True, False)[0] == "closed-form"     # faketri not cached yet
    _cache(tri)
    assert pick_auto(True, False)[0] == "faketri"
    try:  # fakefree is not cached: another trimap-free model may be (none is in an isolated home)
        name = pick_auto(False, False)[0]
    except UsageError:
        name = None
    assert name != "fakefree"
    _cache(free)
    assert pick_auto(False, False)[0] == "fakefree"


def test_model_foreground_used_when_predicted(tmp_path, ex, isolated_home, fake_entries):
    _cache(fake_entries[1])
    r = invoke("matte", ex["image"], "-o", tmp_path / "o", "-T", "foreground,rgba")
    assert r.exit_code == 0, r.stderr
    assert "using fakefree" in r.stderr
    fg = read_image(tmp_path / "o" / "hair_foreground.png")
    assert (fg[..., 0] == 255).all() and (fg[..., 1:] == 0).all()
    assert read_png_text(tmp_path / "o" / "hair_rgba.png")["foreground"] == "model"
    r = invoke("matte", ex["image"], "-o", tmp_path / "o2", "-T", "foreground", "--model", "fakefree",
               "--estimate", "none")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "o2" / "hair_foreground.png"), small_example()["hair"])


def test_16bit_and_exif_rotated_inputs(tmp_path, ex):
    from PIL import Image

    e = small_example()
    img16 = e["hair"].astype(np.uint16) * 257
    write_image(tmp_path / "in16" / "hair.png", img16, bits=16)
    r = invoke("matte", tmp_path / "in16" / "hair.png", "--trimap", ex["trimap"], "-o", tmp_path / "o16", "--model", "cf")
    assert r.exit_code == 0, r.stderr
    base = invoke("matte", ex["image"], "--trimap", ex["trimap"], "-o", tmp_path / "o8", "--model", "cf")
    assert base.exit_code == 0
    a16 = read_image(tmp_path / "o16" / "hair_alpha.png").astype(int)
    a8 = read_image(tmp_path / "o8" / "hair_alpha.png").astype(int)
    assert np.abs(a16 - a8).max() <= 1  # same picture, 16-bit precision kept through the pipeline
    # stored rotated with EXIF orientation 6 (display = rotate 90 CW): the upright trimap must fit
    stored = np.rot90(e["hair"], 1)  # rotating it back 90 CW gives the upright image
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "rot").mkdir()
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "rot" / "hair.png", exif=exif.tobytes())
    r = invoke("matte", tmp_path / "rot" / "hair.png", "--trimap", ex["trimap"], "-o", tmp_path / "orot", "--model", "cf")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "orot" / "hair_alpha.png"), a8)


def test_rerun_with_output_folder_inside_input_folder(tmp_path):
    ex = write_example(tmp_path / "nest", parts=("image",))
    tri = write_example(tmp_path / "t", parts=("trimap",))["trimap"]
    nest = tmp_path / "nest"
    for extra in ([], [], ["--overwrite"]):
        r = invoke("matte", nest, "-m", "cf", "--trimap", tri, "-o", nest / "out", "-T", "alpha,rgba", *extra)
        assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in (nest / "out").iterdir()) == [".mattecli-outputs", "hair_alpha.png",
                                                                "hair_rgba.png"]
    # outputs written next to the inputs are not inputs of the next run either (trimap folder = input folder)
    import shutil

    shutil.rmtree(nest / "out")
    (nest / "hair_trimap.png").write_bytes(tri.read_bytes())
    for _ in range(2):
        r = invoke("matte", nest, "-m", "cf", "--trimap", nest, "-o", nest, "-T", "alpha", "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["summary"]["total"] == 1
    assert ex["image"].exists()


def test_usage_errors_before_the_model_runs(tmp_path, ex):
    def err(*args):
        r = invoke("matte", ex["image"], "--trimap", ex["trimap"], *args)
        assert r.exit_code == 2, (args, r.stderr)
        assert not (tmp_path / "o").exists()
        return one_line_error(r)

    assert "JPEG" in err("-o", tmp_path / "single.jpg")
    assert "--device 'bogus'" in err("-m", "cf", "--device", "bogus", "-o", tmp_path / "o")
    assert "--precision 'xyz'" in err("-m", "cf", "--precision", "xyz", "-o", tmp_path / "o")
    assert "disagree" in err("--format", "tif", "-o", tmp_path / "single.png")
    assert "--report" in err("--report", "/proc/nope/run.json", "-o", tmp_path / "o")
    assert "no {type} field" in err("-T", "alpha,rgba", "--template", "{stem}.{ext}", "-o", tmp_path / "o")
    assert not (tmp_path / "single.jpg").exists() and not (tmp_path / "single.png").exists()


def test_duplicate_stems_hint_suggests_name(tmp_path):
    d = tmp_path / "dup"
    write_example(d, name="p", parts=("image",))
    write_image(d / "p.jpg", read_image(d / "p.png"))
    tri = write_example(tmp_path / "t", parts=("trimap",))["trimap"]
    r = invoke("matte", d, "--trimap", tri, "-m", "cf", "-o", tmp_path / "o")
    assert r.exit_code == 2
    line = one_line_error(r)
    assert "{name}_{type}.{ext}" in line and "'{relpath}_{type}.{ext}'" not in line


def test_no_arguments_help_goes_to_stderr():
    for args in ([], ["matte"]):
        p = subprocess.run([sys.executable, "-m", "mattecli", *args], capture_output=True, text=True,
                           env={**os.environ, "NO_COLOR": "1"})
        assert p.returncode == 2 and p.stdout == "" and "Usage" in p.stderr
    p = subprocess.run([sys.executable, "-m", "mattecli", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "Usage" in p.stdout


def test_second_output_folder_nested_in_the_input_folder(tmp_path):
    """`-o photos/out1/` then `-o photos/out2/`: the second run does not matte out1's outputs again."""
    nest = tmp_path / "photos"
    write_example(nest, parts=("image",))
    tri = write_example(tmp_path / "t", parts=("trimap",))["trimap"]
    for out in ("out1", "out2"):
        r = invoke("matte", nest, "-m", "cf", "--trimap", tri, "-o", nest / out, "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["summary"]["total"] == 1
    assert sorted(p.name for p in (nest / "out2").iterdir() if not p.name.startswith(".")) == ["hair_alpha.png"]
