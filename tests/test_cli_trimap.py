"""`mattecli trimap`: from masks, alphas and (registry) segmenters."""
from __future__ import annotations

import numpy as np
import pytest

from foundation_helpers import invoke, one_line_error, runner, small_example, write_example
from mattecli.backends.base import Backend, Prediction
from mattecli.imaging.io import read_image, read_png_text, write_image
from mattecli.registry import ModelEntry


def app():
    from mattecli.cli.app import app as the_app

    return the_app


def test_from_alpha_matches_library(tmp_path):
    from mattecli.imaging.trimap import trimap_from_alpha

    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    r = invoke("trimap", ex["image"], "--from-alpha", ex["alpha"], "--band", "2", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "out" / "hair_trimap.png"
    assert r.stdout.split() == [str(out)]
    t = read_image(out)
    assert t.dtype == np.uint8 and set(np.unique(t)) <= {0, 128, 255}
    want = trimap_from_alpha(small_example()["hair_alpha"] / 255.0, 2, "ellipse", 0.06, 0.96)
    np.testing.assert_array_equal(t, want)
    assert "unknown" in read_png_text(out)["mattecli-trimap"]


def test_mask_folder_without_images_and_band_percent(tmp_path):
    m = np.zeros((50, 60), np.uint8)
    m[10:40, 15:45] = 255
    write_image(tmp_path / "masks" / "a.png", m)
    write_image(tmp_path / "masks" / "sub" / "b.png", 255 - m)
    r = invoke("trimap", "--mask", tmp_path / "masks", "--band", "4%", "--kernel", "rect", "-o", tmp_path / "t")
    assert r.exit_code == 0, r.stderr
    a = read_image(tmp_path / "t" / "a_trimap.png")
    b = read_image(tmp_path / "t" / "sub" / "b_trimap.png")
    np.testing.assert_array_equal(a == 0, b == 255)
    np.testing.assert_array_equal(a == 128, b == 128)
    assert (a == 128).sum() == (30 + 6) ** 2 - (30 - 6) ** 2  # 4% of the 78 px diagonal = 3 px each side


def test_mask_paired_by_stem_and_resized(tmp_path):
    write_example(tmp_path / "img", name="p", parts=("image",))  # 48x48
    m = np.zeros((24, 24), np.uint8)
    m[6:18, 6:18] = 255
    write_image(tmp_path / "masks" / "p_mask.png", m)
    r = invoke("trimap", tmp_path / "img", "--mask", tmp_path / "masks", "-o", tmp_path / "t", "--band", "3")
    assert r.exit_code == 0, r.stderr
    assert read_image(tmp_path / "t" / "p_trimap.png").shape == (48, 48)


def test_usage_errors(tmp_path):
    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    r = invoke("trimap", ex["image"], "-o", tmp_path / "t")
    assert r.exit_code == 2 and "exactly one of" in one_line_error(r)
    r = invoke("trimap", ex["image"], "--from-alpha", ex["alpha"], "--lo", "0.9", "--hi", "0.1", "-o", tmp_path / "t")
    assert r.exit_code == 2
    r = invoke("trimap", ex["image"], "--segmenter", "no-such-model", "-o", tmp_path / "t")
    assert r.exit_code == 2 and "unknown model" in one_line_error(r)
    r = invoke("trimap", ex["image"], "--segmenter", "closed-form", "-o", tmp_path / "t")
    assert r.exit_code == 2 and "needs trimap" in one_line_error(r)
    flat = tmp_path / "flat.png"
    write_image(flat, np.full((48, 48), 255, np.uint8))
    r = invoke("trimap", ex["image"], "--from-alpha", flat, "-o", tmp_path / "t")
    assert r.exit_code == 1 and "no unknown" in one_line_error(r)


class FakeSegmenter(Backend):
    """Labels: class 2 in a centred square, class 1 elsewhere."""

    def predict_batch(self, batch):
        import torch

        n, (h, w) = batch.n, batch.size
        lab = torch.ones((n, h, w), dtype=torch.int32)
        lab[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 2
        return Prediction(alpha=(lab == 2).float()[:, None], extras={"labels": lab})


class FakeMatting(Backend):
    def predict_batch(self, batch):
        import torch

        n, (h, w) = batch.n, batch.size
        a = torch.zeros((n, 1, h, w))
        a[..., w // 2:] = 1.0
        a[..., w // 2 - 2: w // 2] = 0.5
        return Prediction(alpha=a)


@pytest.fixture
def fake_models(monkeypatch):
    from mattecli import registry

    registry._load()
    seg = ModelEntry(name="fakeseg", family="test", summary="test", kind="segmenter",
                     adapter="test_cli_trimap:FakeSegmenter", classes=("sky", "ground", "person"))
    mat = ModelEntry(name="fakematting", family="test", summary="test", adapter="test_cli_trimap:FakeMatting")
    monkeypatch.setitem(registry._ENTRIES, "fakeseg", seg)
    monkeypatch.setitem(registry._ENTRIES, "fakematting", mat)


def test_segmenter_classes(tmp_path, fake_models):
    ex = write_example(tmp_path / "d", parts=("image",))
    r = invoke("trimap", ex["image"], "--segmenter", "fakeseg", "--band", "2", "-o", tmp_path / "t")
    assert r.exit_code == 0, r.stderr  # default class: person (index 2)
    t = read_image(tmp_path / "t" / "hair_trimap.png")
    assert t[24, 24] == 255 and t[2, 2] == 0 and t[12, 24] == 128
    r = invoke("trimap", ex["image"], "--segmenter", "fakeseg", "--classes", "ground", "-o", tmp_path / "t2")
    assert r.exit_code == 0, r.stderr
    assert read_image(tmp_path / "t2" / "hair_trimap.png")[2, 2] == 255
    r = invoke("trimap", ex["image"], "--segmenter", "fakeseg", "--classes", "cat", "-o", tmp_path / "t3")
    assert r.exit_code == 2 and "cat" in one_line_error(r)


def test_matting_model_as_segmenter(tmp_path, fake_models):
    ex = write_example(tmp_path / "d", parts=("image",))
    r = invoke("trimap", ex["image"], "--segmenter", "fakematting", "-o", tmp_path / "t", "--band", "1")
    assert r.exit_code == 0, r.stderr
    t = read_image(tmp_path / "t" / "hair_trimap.png")
    assert (t[:, :21] == 0).all() and (t[:, 21:25] == 128).all() and (t[:, 25:] == 255).all()


def test_subprocess(tmp_path):
    import os
    import subprocess
    import sys

    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    p = subprocess.run([sys.executable, "-m", "mattecli", "trimap", str(ex["image"]), "--from-alpha", str(ex["alpha"]),
                        "-o", str(tmp_path / "t"), "--json"], capture_output=True, text=True,
                       env=dict(os.environ, NO_COLOR="1"), timeout=120)
    assert p.returncode == 0, p.stderr
    import json

    doc = json.loads(p.stdout)
    assert doc["items"][0]["status"] == "ok" and doc["items"][0]["size"] == "48x48"
    assert read_image(tmp_path / "t" / "hair_trimap.png").shape == (48, 48)


def test_alpha_files_as_inputs_are_named_after_the_image(tmp_path):
    ex = write_example(tmp_path / "d", parts=("alpha",))
    r = invoke("trimap", "--from-alpha", ex["alpha"], "-o", tmp_path / "t", "--template", "{stem}.tri.{ext}")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "t" / "hair.tri.png").is_file()


def test_flag_values_are_usage_errors_up_front(tmp_path):
    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    for args, needle in ((["--from-alpha", ex["alpha"], "--band", "abc"], "--band 'abc'"),
                         (["--from-alpha", ex["alpha"], "--band", "inf"], "--band 'inf'"),
                         (["--mask", ex["alpha"], "--band", "0"], "at least 1 pixel"),
                         (["--mask", ex["alpha"], "--threshold", "2"], "--threshold"),
                         (["--from-alpha", ex["alpha"], "--classes", "car"], "--classes"),
                         (["--segmenter", "rvm", "--classes", "car"], "segmenters"),
                         (["--segmenter", "rvm", "--device", "gpu9"], "--device")):
        r = invoke("trimap", ex["image"], *args, "-o", tmp_path / "out")
        assert r.exit_code == 2, (args, r.stderr)
        assert needle in one_line_error(r)
        assert not (tmp_path / "out").exists()


def test_rerun_into_the_input_folder(tmp_path):
    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    out = tmp_path / "d" / "hair_trimap.png"
    args = ("trimap", tmp_path / "d", "--from-alpha", tmp_path / "d", "--band", "2", "-o", tmp_path / "d")
    r = invoke(*args)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(out)]
    r = invoke(*args)                      # the output of the first run is neither an input nor replaced
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "1 skipped" in r.stderr
    r = invoke(*args, "--overwrite")
    assert r.exit_code == 0 and r.stdout.split() == [str(out)], r.stderr
    assert ex["image"].exists()


def test_default_output_beside_the_input_and_in_a_sibling_folder(tmp_path):
    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    r = invoke("trimap", ex["image"], "--from-alpha", ex["alpha"], "--band", "2")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "d" / "hair_trimap.png")]
    write_example(tmp_path / "al", parts=("alpha",))
    r = invoke("trimap", "--from-alpha", tmp_path / "al", "--band", "2")    # the alphas are the inputs
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "al_trimap" / "hair_trimap.png")]


def test_missing_partner_is_that_inputs_error(tmp_path):
    write_example(tmp_path / "img", name="a", parts=("image",))
    write_example(tmp_path / "img", name="b", parts=("image",))
    write_example(tmp_path / "al", name="a", parts=("alpha",))
    r = invoke("trimap", tmp_path / "img", "--from-alpha", tmp_path / "al", "--band", "2", "-o", tmp_path / "t")
    assert r.exit_code == 1
    assert r.stdout.split() == [str(tmp_path / "t" / "a_trimap.png")]
    assert "--from-alpha: no alpha for" in one_line_error(r) and "b.png" in one_line_error(r)


def test_stdin_and_stdout(tmp_path):
    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    data = ex["alpha"].read_bytes()
    r = runner().invoke(app(), ["trimap", "--from-alpha", "-", "--band", "2", "-o", "-"], input=data)
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner().invoke(app(), ["trimap", "-", "--from-alpha", str(ex["alpha"]), "-o", "-", "--json"], input=data)
    assert r.exit_code == 2 and "--json" in one_line_error(r)


def test_task_pickles_without_its_model(tmp_path):
    import pickle

    from mattecli.batch import Item
    from mattecli.tasks import planned_outputs
    from mattecli.tasks.trimap import TrimapTask

    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    task = TrimapTask(kind="alpha", band="2")
    task._backend = object()                      # a loaded model never travels
    back = pickle.loads(pickle.dumps(task))
    assert back._backend is None and back.band == "2"
    it = Item(path=ex["image"], rel=ex["image"].relative_to(tmp_path / "d"), partners={"alpha": ex["alpha"]})
    it.info["outputs"] = [tmp_path / "t.png"]
    assert pickle.loads(pickle.dumps(planned_outputs))(it) == [tmp_path / "t.png"]
    assert back(it)["outputs"] == [tmp_path / "t.png"] and read_image(tmp_path / "t.png").shape == (48, 48)
