"""Batch semantics (mattecli.batch): input expansion, stem pairing, output plans, the runner and its reports."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mattecli import batch as B
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


def test_unpaired_and_ambiguous_are_item_problems(tmp_path):
    """A missing or ambiguous partner is that item's error (it fails at run time; the batch goes on)."""
    for n in ("a", "b", "c"):
        _touch_img(tmp_path / "img" / f"{n}.png")
    _touch_img(tmp_path / "tri" / "a.png")
    items = B.pair(B.expand_inputs([tmp_path / "img"]), tmp_path / "tri", "trimap", flag="--trimap")
    probs = {i.path.name: i.problem for i in items}
    assert probs["a.png"] is None
    for n in ("b.png", "c.png"):
        assert "--trimap" in probs[n] and n in probs[n] and "\n" not in probs[n]
    _touch_img(tmp_path / "tri" / "b.png")
    _touch_img(tmp_path / "tri" / "c.png")
    _touch_img(tmp_path / "tri" / "c.tif")
    items = B.pair(B.expand_inputs([tmp_path / "img"]), tmp_path / "tri", "trimap")
    c = next(i for i in items if i.path.name == "c.png")
    assert "several candidate files for" in c.problem and "c.png" in c.problem
    assert all(i.problem is None for i in items if i.path.name != "c.png")
    r = B.BatchRunner(verb="t", quiet=True)
    assert r.run(items, lambda it: []) == 1
    assert [x.status for x in r.records] == ["ok", "ok", "failed"]
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
    # every planned input is in the report: the one never reached is "not-run"
    assert [row["status"] for row in rows] == ["ok", "failed", "not-run"] and not (tmp_path / "out" / "d.png").exists()
    assert r.summary()["total"] == 3 and r.summary()["not_run"] == 1
    assert set(B.report.CSV_COLUMNS) <= set(rows[0])
    with pytest.raises(UsageError, match="json or .csv"):
        B.BatchRunner(verb="t", report=tmp_path / "r.txt")


def test_runner_never_replaces_outputs_silently(tmp_path, capsys):
    """Existing complete outputs: the item is skipped (resume); a damaged one is that item's error naming it, unless
    overwrite; nothing is called for them."""
    items = _items(tmp_path, ["a", "b"])
    fn = _proc(tmp_path)
    planned = lambda it: [tmp_path / "out" / f"{it.stem}.png"]  # noqa: E731
    assert B.BatchRunner(verb="t").run(items, fn, planned) == 0
    capsys.readouterr()
    (tmp_path / "out" / "b.png").write_bytes((tmp_path / "out" / "b.png").read_bytes()[:30])  # truncate
    calls = []
    r = B.BatchRunner(verb="t", json_out=True)
    assert r.run(items, lambda it: (calls.append(it.stem), fn(it))[1], planned) == 1
    assert calls == [] and [x.status for x in r.records] == ["skipped", "failed"]
    assert "b.png exists but is incomplete" in r.records[1].error and "--overwrite" in r.records[1].error
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["skipped"] == 1 and doc["summary"]["failed"] == 1
    r = B.BatchRunner(verb="t", overwrite=True, quiet=True)
    assert r.run(items, lambda it: (calls.append(it.stem), fn(it))[1], planned) == 0
    assert calls == ["a", "b"] and [x.status for x in r.records] == ["ok", "ok"]


def test_runner_sigterm_writes_report_and_exits_143(tmp_path, capsys):
    import os
    import signal

    items = _items(tmp_path, ["a", "b", "c"])
    fn = _proc(tmp_path)

    def proc(it):
        if it.stem == "b":
            os.kill(os.getpid(), signal.SIGTERM)
        return fn(it)

    before = signal.getsignal(signal.SIGTERM)
    r = B.BatchRunner(verb="test", report=tmp_path / "run.json")
    assert r.run(items, proc) == 143
    assert signal.getsignal(signal.SIGTERM) == before   # handler restored
    rep = json.loads((tmp_path / "run.json").read_text())
    assert rep["summary"]["interrupted"] is True and rep["summary"]["signal"] == "SIGTERM"
    assert rep["summary"]["total"] == 3
    assert [i["status"] for i in rep["items"]] == ["ok", "failed", "not-run"]
    assert "interrupted (SIGTERM)" in capsys.readouterr().err


def test_report_path_checked_up_front_and_write_failure_exits_1(tmp_path, capsys, monkeypatch):
    with pytest.raises(UsageError, match="cannot"):
        B.check_report("/proc/nope/run.json")
    with pytest.raises(UsageError, match="is a folder"):
        (tmp_path / "d.json").mkdir()
        B.check_report(tmp_path / "d.json")
    B.check_report(tmp_path / "new" / "sub" / "run.json")     # folders that can be created are fine
    items = _items(tmp_path, ["a"])
    r = B.BatchRunner(verb="test", report=tmp_path / "run.json")

    def boom(*a, **k):
        raise InputError("disk full")

    monkeypatch.setattr(B.runner, "atomic_write_text", boom)
    assert r.run(items, _proc(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "--report" in err and "not written" in err and "report: " not in err


def test_outputs_inside_the_input_folder_are_not_inputs(tmp_path):
    src = tmp_path / "nest"
    _touch_img(src / "p.png")
    _touch_img(src / "q.png")
    _touch_img(src / "out" / "p_alpha.png")      # a previous run's outputs, in -o nest/out/
    _touch_img(src / "p_alpha.png")               # and in the input folder itself
    excl = B.output_excludes(str(src / "out"))
    items = B.expand_inputs([src], exclude=excl)
    assert [i.relstem for i in items] == ["p", "p_alpha", "q"]
    B.drop_run_outputs(items, str(src), template="{relpath}_{type}.{ext}", ext="png", types=["alpha"])
    assert [i.relstem for i in items] == ["p", "q"]
    # a template's fixed folder is excluded; the walked folder itself never is
    assert [i.relstem for i in B.expand_inputs([src], exclude=B.output_excludes(str(src / "out" / "{stem}.png")))] \
        == ["p", "p_alpha", "q"]
    assert len(B.expand_inputs([src], exclude=B.output_excludes(str(src)))) == 4
    # files given by name are always inputs
    assert len(B.expand_inputs([src / "out" / "p_alpha.png"], exclude=excl)) == 1


def test_collision_hints_name_the_cause(tmp_path):
    _touch_img(tmp_path / "dup" / "p.png")
    write_image(tmp_path / "dup" / "p.jpg", np.zeros((4, 5, 3), np.uint8))
    items = B.expand_inputs([tmp_path / "dup"])
    plan = B.OutputPlan(tmp_path / "o", template="{relpath}_{type}.{ext}")
    with pytest.raises(UsageError, match=r"\{name\}_\{type\}") as e:
        B.check_plan(items, [plan.path(i, type="alpha") for i in items], plan=plan, types=["alpha"])
    assert "'{relpath}_{type}.{ext}'" not in str(e.value)
    one = items[:1]
    plan = B.OutputPlan(tmp_path / "o", template="{stem}.{ext}")
    with pytest.raises(UsageError, match=r"no \{type\} field") as e:
        B.check_plan(one, [plan.path(one[0], type=t) for t in ("alpha", "rgba")], plan=plan, types=["alpha", "rgba"])
    assert "several inputs" not in str(e.value)


def test_device_precision_values():
    B.check_device_precision("cuda:1", "bf16")
    B.check_device_precision("auto", "auto")
    with pytest.raises(UsageError, match="--device 'bogus'"):
        B.check_device_precision("bogus", "fp32")
    with pytest.raises(UsageError, match="--precision 'xyz'"):
        B.check_device_precision("cpu", "xyz")
