"""benchmarks/gpu_check.py: its CPU dry run exercises every check (accuracy, video, upload, out-of-memory back-off)
and passes. It has never run on a GPU in CI: this keeps the script itself working."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.shared


def test_cpu_dry_run_passes(tmp_path, shared, isolated_home):
    import os

    out = tmp_path / "rows.json"
    env = {**os.environ, "MATTECLI_SHARED": str(shared), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu-dry-run", "--quick",
                        "--models", "rvm", "modnet", "--json", str(out)], capture_output=True, text=True, env=env,
                       timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == "PASS"
    rows = json.loads(out.read_text())
    checks = {r["check"] for r in rows}
    assert checks == {"accuracy", "video", "upload", "oom_backoff", "summary"}
    acc = [r for r in rows if r["check"] == "accuracy" and "skipped" not in r]
    assert {r["model"] for r in acc} == {"rvm", "modnet"} and all(r["pass"] for r in acc)
    video = [r for r in rows if r["check"] == "video"]
    assert {(r["model"], r["batch"]) for r in video} >= {("rvm", 1), ("rvm", 4), ("bgmv2.mobilenetv2", 4)}
    oom = next(r for r in rows if r["check"] == "oom_backoff")
    assert oom["pass"] and oom["final_batch"] < 8 and any("batch size lowered" in n for n in oom["notes"])
