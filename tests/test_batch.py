"""Batch semantics (cli/_batch.py): input expansion, stem pairing, output plans, the runner and its reports."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mattecli.cli import _batch as B
from mattecli.errors import InputError, UsageError
from mattecli.imaging.io import write_image


def _touch_img(p: Path, v: int = 0) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    write_image(p, np.full((4, 5), v, np.uint8))
    return p


def test_expand_files_folders_globs(tmp_path, monkeypatch):
    _touch_img(tmp_path / "in" / "a.png")
    _touch_img(tmp_path / "in" / "sub" / "b.jpg".replace("jpg", "png"))
    _touch_img(tmp_path / "in" / "sub" / "deeper" / "c.tif")
    (tmp_path / "in" / "notes.txt").write_text("x")
    _touch_img(tmp_path / "in" / ".hidden.png")
    (tmp_path / "in" / ".a.png.123.part").write_bytes(b"partial")
    items = B.expand_inputs([tmp_path / "in"])
    assert [i.relstem for i in items] == ["a", "sub/b", "sub/deeper/c"]
    g = B.expand_inputs([str(tmp_path / "in" / "**" / "*.png")])
    assert sorted(i.relstem for i in g) == ["a", "sub/b"]
    f = B.expand_inputs([tmp_path / "in" / "sub" / "b.png", tmp_path / "in" / "sub" / "b.png"])
    assert len(f) == 1 and f[0].rel == Path("b.png")
    with pytest.raises(UsageError, match="not found: .*nope.png"):
        B.expand_inputs([tmp_path / "nope.png"])
    with pytest.raises(UsageError, match="not found"):
        B.expand_inputs([str(tmp_path / "*.jpeg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no input files"):
        B.expand_inputs([tmp_path / "empty"])


def test_pair_by_stem_never_by_position(tmp_path):
    for n in ("b", "a", "c"):
        _touch_img(tmp_path / "img" / f"{n}.png")
    # partner names sort in a different order than the inputs; suffixed names accepted
    _touch_img(tmp_path / "tri" / "c.png", 1)
    _touch_img(tmp_path / "tri" / "a_trimap.png", 2)
    _touch_img(tmp_path / "tri" / "b-trimap.png", 3)
    items = B.pair(B.expand_inputs([tmp_path / "img"]), tmp_path / "tri", "trimap")
    got = {i.stem: i.partners["trimap"].name for i in items}
    assert got == {"a": "a_trimap.png", "b": "b-trimap.png", "c": "c.png"}


def test_pair_exact_stem_preferred_and_subfolders(tmp_path):
    _touch_img(tmp_path / "img" / "x" / "p.png")
    _touch_img(tmp_path / "img" / "y" / "p.png")
    _touch_img(tmp_path / "tri" / "x" / "p.png")
    _touch_img(tmp_path / "tri" / "y" / "p_trimap.png")
    _touch_img(tmp_path / "tri" / "y" / "p.png")
    items = B.pair(B.expand_inputs([tmp_path / "img"]), tmp_path / "tri", "trimap")
    assert {i.relstem: i.partners["trimap"].relative_to(tmp_path / "tri").as_posix() for i in items} == {
        "x/p": "x/p.png", "y/p": "y/p.png"}


def test_pair_input_suffix_img_back(tmp_path):
    _touch_img(tmp_path / "d" / "0001_img.png")
    _touch_img(tmp_path / "d" / "0001_back.png")
    _touch_img(tmp_path / "d" / "0002_img.png")
    _touch_img(tmp_path / "d" / "0002_back.png")
    items = B.pair(B.expand_inputs([tmp_path / "d"]), tmp_path / "d", "bg")
    assert {i.stem: i.partners["bg"].stem for i in items} == {"0001_img": "0001_back", "0002_img": "0002_back"}


def test_partner_files_in_the_same_folder_are_not_inputs(tmp_path):
    _touch_img(tmp_path / "d" / "hair.png")
    _touch_img(tmp_path / "d" / "hair_trimap.png")
    items = B.pair(B.expand_inputs([tmp_path / "d"]), tmp_path / "d", "trimap")
    assert [(i.stem, i.partners["trimap"].name) for i in items] == [("hair", "hair_trimap.png")]


def test_unpaired_and_ambiguous_errors_list_inputs(tmp_path):
    for n in ("a", "b", "c"):
        _touch_img(tmp_path / "img" / f"{n}.png")
    _touch_img(tmp_path / "tri" / "a.png")
    with pytest.raises(UsageError) as ei:
        B.pair(B.expand_inputs([tmp_path / "img"]), tmp_path / "tri", "trimap", flag="--trimap")
    msg = str(ei.value)
    assert "--trimap" in msg and "2 input(s)" in msg and "b.png" in msg and "c.png" in msg and "\n" not in msg
    _touch_img(tmp_path / "tri" / "b.png")
    _touch_img(tmp_path / "tri" / "c.png")
    _touch_img(tmp_path / "tri" / "c.tif")
    with pytest.raises(UsageError, match="several candidate files for .*c.png"):
        B.pair(B.expand_inputs([tmp_path / "img"]), tmp_path / "tri", "trimap")
    with pytest.raises(UsageError, match="not found"):
        B.pair(B.expand_inputs([tmp_path / "img"]), tmp_path / "missing", "trimap")


def test_single_partner_file_for_all(tmp_path):
    _touch_img(tmp_path / "img" / "a.png")
    _touch_img(tmp_path / "img" / "b.png")
    plate = _touch_img(tmp_path / "plate.png")
    items = B.pair(B.expand_inputs([tmp_path / "img"]), plate, "bg")
    assert all(i.partners["bg"] == plate for i in items) and len(items) == 2


def test_output_plan_templates_and_checks(tmp_path):
    _touch_img(tmp_path / "in" / "s" / "x.png")
    items = B.expand_inputs([tmp_path / "in"])
    it = items[0]
    plan = B.OutputPlan(tmp_path / "out")
    assert plan.path(it, type="alpha") == tmp_path / "out" / "s" / "x_alpha.png"
    plan2 = B.OutputPlan(str(tmp_path / "o" / "{model}" / "{stem}.{type}.{ext}"), ext="tif")
    assert plan2.path(it, type="rgba", model="knn") == tmp_path / "o" / "knn" / "x.rgba.tif"
    assert B.OutputPlan(tmp_path / "one.png", single_file_ok=True).path(it) == tmp_path / "one.png"
    with pytest.raises(UsageError, match="single output file"):
        B.OutputPlan(tmp_path / "one.png")
    with pytest.raises(UsageError, match="unknown field"):
        B.OutputPlan(tmp_path / "out", template="{nope}.png")
    with pytest.raises(UsageError, match="overwrite the input"):
        B.check_plan(items, [B.OutputPlan(tmp_path / "in", template="{relpath}.{ext}").path(it)])
    with pytest.raises(UsageError, match="same output"):
        B.check_plan(items, [tmp_path / "q.png", tmp_path / "q.png"])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        B.OutputPlan(tmp_path / "afile")


def _items(tmp_path, names):
    return [B.Item(path=_touch_img(tmp_path / "in" / f"{n}.png"), rel=Path(f"{n}.png")) for n in names]


def _proc(tmp_path):
    def fn(it):
        if "bad" in it.stem:
            raise InputError(f"{it.path}: broken")
        if "bug" in it.stem:
            raise ZeroDivisionError("division by zero")
        out = tmp_path / "out" / f"{it.stem}.png"
        write_image(out, np.zeros((2, 2), np.uint8))
        return {"outputs": [out], "width": 2, "height": 2}
    return fn


def test_runner_keeps_going_and_reports(tmp_path, capsys):
    items = _items(tmp_path, ["a", "bad", "bug", "d"])
    r = B.BatchRunner(verb="test", model="m", weights_sha256="abc", report=tmp_path / "run.json", argv=["x"])
    code = r.run(items, _proc(tmp_path))
    out, err = capsys.readouterr()
    assert code == 1
    assert out.split() == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "d.png")]
    assert "bad.png: broken" in err and "ZeroDivisionError: division by zero" in err
    rep = json.loads((tmp_path / "run.json").read_text())
    assert [i["status"] for i in rep["items"]] == ["ok", "failed", "failed", "ok"]
    assert rep["items"][0]["model"] == "m" and rep["items"][0]["weights_sha256"] == "abc"
    assert rep["items"][0]["size"] == "2x2" and rep["items"][1]["error"].endswith("broken")
    assert rep["summary"]["failed"] == 2 and rep["summary"]["ok"] == 2


def test_runner_fail_fast_and_csv(tmp_path, capsys):
    items = _items(tmp_path, ["a", "bad", "d"])
    r = B.BatchRunner(verb="test", fail_fast=True, report=tmp_path / "run.csv")
    assert r.run(items, _proc(tmp_path)) == 1
    rows = list(csv.DictReader((tmp_path / "run.csv").open()))
    assert [row["status"] for row in rows] == ["ok", "failed"] and not (tmp_path / "out" / "d.png").exists()
    assert set(B.CSV_COLUMNS) <= set(rows[0])
    with pytest.raises(UsageError, match="json or .csv"):
        B.BatchRunner(verb="t", report=tmp_path / "r.txt")


def test_runner_skip_existing_checks_decoding(tmp_path, capsys):
    items = _items(tmp_path, ["a", "b"])
    fn = _proc(tmp_path)
    planned = lambda it: [tmp_path / "out" / f"{it.stem}.png"]  # noqa: E731
    assert B.BatchRunner(verb="t").run(items, fn, planned) == 0
    capsys.readouterr()
    (tmp_path / "out" / "b.png").write_bytes((tmp_path / "out" / "b.png").read_bytes()[:30])  # truncate
    calls = []
    r = B.BatchRunner(verb="t", skip_existing=True, json_out=True)
    assert r.run(items, lambda it: (calls.append(it.stem), fn(it))[1], planned) == 0
    assert calls == ["b"] and [x.status for x in r.records] == ["skipped", "ok"]
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["skipped"] == 1 and doc["summary"]["ok"] == 1
