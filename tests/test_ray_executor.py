"""``--executor ray``: the same batch on Ray actors gives the same files, report and exit code as a local run; a
worker killed mid-batch loses nothing; Ctrl-C leaves only complete files; URL inputs/outputs through fsspec.

The Ray tests share one local Ray (``ray.init(num_cpus=2)``) per module, started and stopped by the fixture; the
workers import this module (the tests folder is put on their PYTHONPATH) for the test tasks below.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from foundation_helpers import invoke, write_example
from mattecli import batch
from mattecli.batch import executors, remote
from mattecli.batch.runner import BatchRunner, ItemRunner, planned_outputs
from mattecli.errors import InputError, UsageError
from mattecli.imaging.io import atomic_path, atomic_write_bytes, read_image

TESTS = str(Path(__file__).resolve().parent)


# -- no Ray needed -------------------------------------------------------------------------------------------------
def test_executor_flags_are_checked_before_any_work(monkeypatch):
    monkeypatch.delenv(executors.ENV_EXECUTOR, raising=False)
    assert executors.make(None, None) is None
    assert executors.choose(None, "auto") == "ray"            # --ray-address alone means Ray
    monkeypatch.setenv(executors.ENV_EXECUTOR, "ray")
    assert executors.choose(None) == "ray" and executors.choose("local") == "local"
    monkeypatch.setenv(executors.ENV_EXECUTOR, "dask")
    with pytest.raises(UsageError, match=r"\$MATTECLI_EXECUTOR 'dask'"):
        executors.choose(None)
    for args, kw, msg in [(("spark", None), {}, "--executor 'spark'"),
                          (("local", "auto"), {}, "--ray-address needs --executor ray"),
                          (("ray", "http://x"), {}, "--ray-address 'http://x'"),
                          (("ray", None), {"device": "cuda:1"}, "one worker per GPU")]:
        with pytest.raises(UsageError, match=msg):
            executors.make(*args, **kw)
    r = invoke("matte", "x.png", "--executor", "spark")
    assert r.exit_code == 2 and "--executor 'spark'" in r.stderr


def _images(folder: Path, n: int = 3) -> None:
    """n small matting examples (imgs/imK.png + tri/imK.png) and imgs/im9.png, which is not an image."""
    (folder / "tri").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ex = write_example(folder / "imgs", name=f"im{i}", size=24 + 4 * i, seed=i)
        os.replace(ex["trimap"], folder / "tri" / f"im{i}.png")
    (folder / "imgs" / "im9.png").write_bytes(b"not an image")
    (folder / "tri" / "im9.png").write_bytes((folder / "tri" / "im0.png").read_bytes())


def test_url_inputs_and_outputs_are_staged_through_fsspec(tmp_path):
    """memory:// in and out (staged around the task), file:// out (in place): the files of a local run."""
    import fsspec

    _images(tmp_path, 2)
    mem = fsspec.filesystem("memory")
    for f in (tmp_path / "imgs").iterdir():
        mem.pipe_file(f"/mc-in/imgs/{f.name}", f.read_bytes())
        mem.pipe_file(f"/mc-in/tri/{f.name}", (tmp_path / "tri" / f.name).read_bytes())
    items = remote.expand_url("memory://mc-in/imgs/", (".png",))
    assert [it.rel.as_posix() for it in items] == ["im0.png", "im1.png", "im9.png"]
    for it in items:
        it.partners["trimap"] = Path(f"memory://mc-in/tri/{it.rel.name}")
    plan = batch.OutputPlan("memory://mc-out/", ext="png")
    from mattecli.tasks.matte import MatteTask

    task = MatteTask(model="closed-form", types=["alpha"])
    for it in items:
        it.info["outputs"] = [plan.path(it, type="alpha")]
    run = ItemRunner(task, planned_outputs)
    outs = [run(it) for it in items]
    assert [o.status for o in outs] == ["ok", "ok", "failed"], outs
    assert outs[0].outputs == ["memory://mc-out/im0_alpha.png"]
    assert "im9.png" in outs[2].error
    assert remote.lexists("memory://mc-out/im0_alpha.png") and not remote.lexists("memory://mc-out/im9_alpha.png")
    assert not [p for p in mem.find("/mc-out") if p.endswith(".part")]
    # the same as a local run, byte for byte
    local = tmp_path / "local_alpha.png"
    it0 = batch.Item(path=tmp_path / "imgs" / "im0.png", rel=Path("im0.png"),
                     partners={"trimap": tmp_path / "tri" / "im0.png"}, info={"outputs": [local]})
    assert ItemRunner(task, planned_outputs)(it0).status == "ok"
    assert remote.read_bytes("memory://mc-out/im0_alpha.png") == local.read_bytes()
    # a re-run skips them (an object that exists is complete)
    assert run(items[0]).status == "skipped"
    # file:// outputs are local files, written in place
    url = f"file://{tmp_path}/viaurl/im0_alpha.png"
    it0.info["outputs"] = [Path(url)]
    out = ItemRunner(task, planned_outputs)(it0)
    assert out.status == "ok" and out.outputs == [url]
    assert (tmp_path / "viaurl" / "im0_alpha.png").read_bytes() == local.read_bytes()
    assert remote.url_of(Path("s3://bucket/key.png")) == "s3://bucket/key.png" and not remote.is_url("C:/x.png")
    # through the command line: -o URL (the plan's names, staged uploads, skip on a re-run)
    for status in ("ok", "skipped"):
        r = invoke("matte", tmp_path / "imgs", "-t", tmp_path / "tri", "-m", "closed-form", "-o", "memory://mc-cli/",
                   "--json")
        doc = json.loads(r.stdout)
        assert r.exit_code == 1 and [i["status"] for i in doc["items"]] == [status, status, "failed"], r.stderr
        assert doc["items"][1]["outputs"] == ["memory://mc-cli/im1_alpha.png"]
    assert sorted(mem.ls("/mc-cli", detail=False)) == ["/mc-cli/im0_alpha.png", "/mc-cli/im1_alpha.png"]


# -- on a local Ray ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, old) if p)   # the workers import this module
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _report_rows(path: Path, out_dir: str) -> list:
    rows = json.loads(path.read_text())["items"]
    for r in rows:
        r.pop("seconds")
        r["outputs"] = [o.replace(out_dir, "OUT") for o in r["outputs"]]
    return rows


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_writes_the_same_files_and_report_as_local(ray_local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _images(tmp_path, 3)
    runs = {}
    for ex in ("local", "ray"):
        r = invoke("matte", "imgs", "-t", "tri", "-m", "closed-form", "-T", "alpha,rgba", "-o", f"out_{ex}",
                   "--report", f"{ex}.json", "--executor", ex)
        runs[ex] = r
    assert runs["local"].exit_code == runs["ray"].exit_code == 1, runs["ray"].stderr
    a, b = sorted(os.listdir("out_local")), sorted(os.listdir("out_ray"))
    assert a == b and len(a) == 6
    for name in a:
        assert (tmp_path / "out_local" / name).read_bytes() == (tmp_path / "out_ray" / name).read_bytes(), name
    assert _report_rows(tmp_path / "local.json", "out_local") == _report_rows(tmp_path / "ray.json", "out_ray")
    summary = json.loads((tmp_path / "ray.json").read_text())["summary"]
    assert (summary["ok"], summary["failed"]) == (3, 1)
    err = [ln for ln in runs["ray"].stderr.splitlines() if "error" in ln]
    assert err == [ln for ln in runs["local"].stderr.splitlines() if "error" in ln] and "imgs/im9.png" in err[0]
    paths = lambda r: sorted(r.stdout.replace("out_local", "OUT").replace("out_ray", "OUT").split())  # noqa: E731
    assert paths(runs["local"]) == paths(runs["ray"])
    # a re-run on Ray skips everything that is there, as locally
    r = invoke("matte", "imgs", "-t", "tri", "-m", "closed-form", "-T", "alpha,rgba", "-o", "out_ray", "--json",
               "--executor", "ray")
    doc = json.loads(r.stdout)
    assert [i["status"] for i in doc["items"]] == ["skipped"] * 3 + ["failed"]


@dataclass
class CopyTask:
    """Copies the input to its output; ``kill`` = {stem: when} kills the worker process once (a marker file per
    stem): ``before`` writing, or ``after`` (the output complete, the reply never sent); ``always`` every time."""

    folder: str
    kill: dict
    slow: float = 0.0

    def load(self):
        return None

    def _die(self, stem: str, when: str) -> None:
        how = self.kill.get(stem)
        marker = Path(self.folder, f"killed-{stem}")
        if how == "always" or (how == when and not marker.exists()):
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    def __call__(self, it):
        data = read_bytes_checked(it.path)
        out = it.info["outputs"][0]
        self._die(it.stem, "before")
        if self.slow:
            with atomic_path(out) as tmp:     # a long write: the temp file is there all along
                with open(tmp, "wb") as f:
                    for _ in range(int(self.slow / 0.05)):
                        time.sleep(0.05)
                    f.write(data)
        else:
            atomic_write_bytes(out, data)
        with open(Path(self.folder, "writes.log"), "a") as f:
            f.write(f"{it.stem}\n")
        self._die(it.stem, "after")
        return {"outputs": [out]}


def read_bytes_checked(p) -> bytes:
    data = Path(p).read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise InputError(f"{p}: not a PNG", path=p)
    return data


def _copy_items(tmp_path: Path, n: int = 6) -> list:
    from mattecli.imaging.io import write_image

    (tmp_path / "in").mkdir()
    for i in range(n):
        write_image(tmp_path / "in" / f"c{i}.png", np.full((6, 8), 30 * i, np.uint8))
    (tmp_path / "in" / "c9.png").write_bytes(b"garbage")
    items = batch.expand_inputs([tmp_path / "in"])
    for it in items:
        it.info["outputs"] = [tmp_path / "out" / f"{it.stem}.png"]
    return items


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_killed_worker_loses_nothing_and_writes_each_output_once(ray_local, tmp_path):
    from mattecli.batch.executors.ray_pool import RayExecutor

    items = _copy_items(tmp_path)
    task = CopyTask(str(tmp_path), kill={"c1": "before", "c3": "after", "c4": "always"})
    rep = tmp_path / "run.json"
    code = BatchRunner(verb="copy", report=rep, quiet=True).run(items, task, planned=planned_outputs,
                                                                executor=RayExecutor(workers=2, retries=1))
    rows = {Path(r["input"]).stem: r for r in json.loads(rep.read_text())["items"]}
    assert code == 1
    assert [r["status"] for r in rows.values()] == ["ok"] * 4 + ["failed", "ok", "failed"]
    assert "died 2 times" in rows["c4"]["error"] and "not a PNG" in rows["c9"]["error"]
    writes = (tmp_path / "writes.log").read_text().split()
    assert sorted(writes) == ["c0", "c1", "c2", "c3", "c5"]               # c3 died after writing: not written again
    for s in ("c0", "c1", "c2", "c3", "c5"):
        assert (tmp_path / "out" / f"{s}.png").read_bytes() == (tmp_path / "in" / f"{s}.png").read_bytes()
    assert sorted(os.listdir(tmp_path / "out")) == [f"c{i}.png" for i in (0, 1, 2, 3, 5)]   # no temp files


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ctrl_c_stops_the_workers_and_leaves_only_complete_files(ray_local, tmp_path):
    import _thread

    from mattecli.batch.executors.ray_pool import RayExecutor

    items = _copy_items(tmp_path, 8)
    task = CopyTask(str(tmp_path), kill={}, slow=1.0)
    out = tmp_path / "out"

    def interrupt_after_first():
        while not (out.is_dir() and any(p.suffix == ".png" and not p.name.startswith(".") for p in out.iterdir())):
            time.sleep(0.05)
        time.sleep(0.3)
        _thread.interrupt_main()

    ex = RayExecutor(workers=2, grace=10)
    threading.Thread(target=interrupt_after_first, daemon=True).start()
    rep = tmp_path / "run.json"
    code = BatchRunner(verb="copy", report=rep, quiet=True).run(items, task, planned=planned_outputs, executor=ex)
    assert code == 130
    doc = json.loads(rep.read_text())
    st = [i["status"] for i in doc["items"]]
    assert doc["summary"]["interrupted"] and "ok" in st and "not-run" in st, st
    assert all(i["error"] == "interrupted" for i in doc["items"] if i["status"] == "failed")
    left = sorted(os.listdir(out))
    assert all(not n.startswith(".") for n in left), left             # no temp files, no lock files
    assert {n[:-4] for n in left} == {i["input"].rsplit("/", 1)[1][:-4] for i in doc["items"] if i["status"] == "ok"}
    for n in left:
        assert read_image(out / n).shape == (6, 8)
    assert ex.actors == [] and ray_local.is_initialized()              # its workers stopped, the test's Ray kept


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_sigterm_to_a_real_process_on_a_running_cluster(ray_local, tmp_path):
    """``--ray-address auto`` joins the running Ray; SIGTERM mid-batch: exit 143, report written, complete files."""
    import subprocess

    (tmp_path / "tri").mkdir()
    for i in range(12):
        ex = write_example(tmp_path / "imgs", name=f"p{i:02d}", size=160, seed=i)
        os.replace(ex["trimap"], tmp_path / "tri" / f"p{i:02d}.png")
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.Popen([sys.executable, "-m", "mattecli", "matte", "imgs", "-t", "tri", "-m", "closed-form", "-o",
                          "out", "--executor", "ray", "--ray-address", "auto", "--report", "run.json", "-q"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = tmp_path / "out"
    t0 = time.time()
    while not (out.is_dir() and [f for f in os.listdir(out) if f.endswith(".png") and not f.startswith(".")]):
        assert p.poll() is None and time.time() - t0 < 120, p.communicate()
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err.decode()
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["summary"]["signal"] == "SIGTERM" and doc["summary"]["not_run"] > 0
    done = {Path(i["input"]).stem for i in doc["items"] if i["status"] == "ok"}
    stopped = {Path(i["input"]).stem for i in doc["items"] if i["error"] == "interrupted"}
    left = os.listdir(out)
    # no temp or lock files, nothing half-written; an item stopped right after its write may have its file (as locally)
    assert done <= {f[: -len("_alpha.png")] for f in left} <= done | stopped, (left, doc["items"])
    for f in left:
        assert read_image(out / f).shape == (160, 160)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_file_urls_and_a_model_load_error_on_ray(ray_local, tmp_path):
    from mattecli.batch.executors.ray_pool import RayExecutor
    from mattecli.errors import MatteError
    from mattecli.tasks.matte import MatteTask

    _images(tmp_path, 2)
    items = batch.expand_inputs([tmp_path / "imgs"])
    batch.pair(items, tmp_path / "tri", "trimap")
    for it in items:
        it.info["outputs"] = [Path(f"file://{tmp_path}/urlout/{it.stem}_alpha.png")]
    task = MatteTask(model="closed-form", types=["alpha"])
    ex = RayExecutor(workers=2)
    assert executors.prepare(ex, task, count=len(items))["workers"] == 2
    runner = BatchRunner(verb="matte", quiet=True, report=tmp_path / "r.json")
    assert runner.run(items, task, planned=planned_outputs, executor=ex) == 1
    rows = json.loads((tmp_path / "r.json").read_text())["items"]
    assert rows[0]["outputs"] == [f"file://{tmp_path}/urlout/im0_alpha.png"]
    assert sorted(os.listdir(tmp_path / "urlout")) == ["im0_alpha.png", "im1_alpha.png"]
    # a model that cannot load fails before any item, with the local message
    bad = MatteTask(model="closed-form", types=["alpha"], weights="/nonexistent.pth")
    with pytest.raises(MatteError) as local_err:
        bad.load()
    with pytest.raises(MatteError) as ray_err:
        executors.prepare(RayExecutor(workers=1), bad)
    assert str(ray_err.value) == str(local_err.value)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_trimap_composite_and_eval_on_ray_match_local(ray_local, tmp_path, monkeypatch):
    """The other batch verbs through --executor ray: the same files and scores as a local run."""
    monkeypatch.chdir(tmp_path)
    _images(tmp_path, 2)
    (tmp_path / "imgs" / "im9.png").unlink()
    for i in range(2):
        write_example(tmp_path / "gt", name=f"im{i}", size=24 + 4 * i, seed=i, parts=("alpha",))
        os.replace(tmp_path / "gt" / f"im{i}_alpha.png", tmp_path / "gt" / f"im{i}.png")
    outs = {}
    for ex in ("local", "ray"):
        r = invoke("trimap", "imgs", "--from-alpha", "gt", "--band", "2", "-o", f"tri_{ex}", "--executor", ex)
        assert r.exit_code == 0, r.stderr
        r = invoke("composite", "imgs", "--alpha", "gt", "--composite-bg", "greenscreen", "-o", f"comp_{ex}",
                   "--executor", ex)
        assert r.exit_code == 0, r.stderr
        r = invoke("eval", "--model", "closed-form", "--images", "imgs", "--gt", "gt", "--trimap", "tri",
                   "--json", "-q", "--executor", ex)
        assert r.exit_code == 0, r.stderr
        outs[ex] = [{k: v for k, v in row.items() if "seconds" not in k} for row in json.loads(r.stdout)["images"]]
    for kind in ("tri", "comp"):
        a, b = sorted(os.listdir(f"{kind}_local")), sorted(os.listdir(f"{kind}_ray"))
        assert a == b and len(a) == 2
        for name in a:
            assert (tmp_path / f"{kind}_local" / name).read_bytes() == (tmp_path / f"{kind}_ray" / name).read_bytes()
    assert outs["local"] == outs["ray"] and len(outs["ray"]) == 2
