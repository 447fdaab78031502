"""Shared fixtures.

Tests that read ``../shared`` use the ``shared`` fixture (or ``shared_path``/``oracle``): without the folder they skip,
except under ``CI=true`` where a missing ``../shared`` is a failure.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

# Each xdist worker gets one core's worth of threads; idle OpenMP threads sleep (set before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_shared(*parts: str) -> Path:
    """Path inside ../shared; skip if absent (fail under CI=true)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"{p} not present (tests that read ../shared skip outside CI)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared() -> Path:
    return need_shared()


@functools.lru_cache(maxsize=None)
def _synthetic_module():
    path = need_shared("oracles", "synthetic_weights.py")
    spec = importlib.util.spec_from_file_location("_oracle_synthetic_weights", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@functools.lru_cache(maxsize=4)   # a few models at a time: GFM-R101's weights alone take 2 GB
def _weights_of(layout: str) -> dict:
    return _synthetic_module().from_layout_json(layout)


class Oracle:
    """One oracle folder: layout, synthetic weights in the official layout, reference arrays."""

    def __init__(self, name: str):
        self.dir = need_shared("oracles", name)
        self.layout = json.loads((self.dir / "layout.json").read_text())

    def weights(self) -> dict:
        """{official key: numpy array}, from the shared deterministic recipe (built once per test process)."""
        return dict(_weights_of(str(self.dir / "layout.json")))

    def torch_weights(self) -> dict:
        import torch

        return {k: torch.from_numpy(np.array(v)) for k, v in self.weights().items()}

    def net_io(self):
        return np.load(self.dir / "net_io.npz", allow_pickle=False)

    def pipeline_io(self):
        return np.load(self.dir / "pipeline_io.npz", allow_pickle=False)


@pytest.fixture
def oracle():
    return Oracle


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """A private MATTECLI_HOME so tests never see a user's cache."""
    home = tmp_path / "mattecli_home"
    monkeypatch.setenv("MATTECLI_HOME", str(home))
    monkeypatch.setenv("MATTECLI_OFFLINE", "1")
    return home
