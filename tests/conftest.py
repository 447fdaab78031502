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

# the suite never reads or writes the user's weights cache: a private cache home for the whole run (tests that
# need their own use the ``isolated_home`` fixture); subprocesses inherit it
_MADE_HERE = []     # run-scoped temporary folders this process made (removed at its end: pytest_unconfigure)
if "MATTECLI_HOME" not in os.environ:
    import tempfile

    os.environ["MATTECLI_HOME"] = tempfile.mkdtemp(prefix="mattecli-test-home-")
    _MADE_HERE.append(os.environ["MATTECLI_HOME"])
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


def run_dir(name: str) -> Path | None:
    """A folder shared by every process of this test run (None outside pytest)."""
    if not os.environ.get("MATTECLI_TEST_RUN"):
        return None
    d = Path(os.environ["MATTECLI_TEST_RUN"]) / name
    d.mkdir(parents=True, exist_ok=True)
    return d


#: layouts above this size are rebuilt by each process that needs them instead of written to disk (GFM-R101: 2 GB,
#: used by one test module only)
_DISK_CACHE_MAX_BYTES = 1 << 30


@functools.lru_cache(maxsize=4)   # a few models at a time: GFM-R101's weights alone take 2 GB
def _weights_of(layout_path: str) -> dict:
    """{official key: array} by the oracle's recipe, built once per test run: the first process to need a layout
    builds it and saves it to the run's folder (an uncompressed .npz, under a lock); the others load it."""
    import hashlib

    from filelock import FileLock

    folder = run_dir("synthetic-weights")
    if folder is None:          # outside pytest (benchmarks): no run to share with
        return _build_weights(layout_path)
    stem = folder / hashlib.sha256(layout_path.encode()).hexdigest()[:16]
    path = stem.with_suffix(".npz")
    with FileLock(str(stem.with_suffix(".lock"))):
        if not path.exists():
            weights = _build_weights(layout_path)
            if sum(np.asarray(v).nbytes for v in weights.values()) <= _DISK_CACHE_MAX_BYTES:
                with open(stem.with_suffix(".tmp"), "wb") as f:
                    np.savez(f, **weights)
                os.replace(stem.with_suffix(".tmp"), path)
            return weights
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _build_weights(layout_path: str) -> dict:
    """{official key: array} by the oracle's recipe, including the two special rules its layout.json may state:
    ``recipe_layout`` (PP-Matting: the recipe runs on renamed BN statistics, native keys take those values) and
    ``torch_equivalent_layout`` (Context-Aware Matting: the recipe runs on a torch layout, values transposed back to
    TensorFlow's HWIO)."""
    layout = json.loads(Path(layout_path).read_text())
    syn = _synthetic_module()
    if "recipe_layout" in layout:
        vals = syn.synthetic_state_dict(layout["recipe_layout"])
        native = [k for k, _, _ in layout["state_dict"]]
        recipe = [k for k, _, _ in layout["recipe_layout"]]
        return {n: vals[r] for n, r in zip(native, recipe)}
    if "torch_equivalent_layout" in layout:
        tel, tfl = layout["torch_equivalent_layout"], layout["state_dict"]
        sd = syn.synthetic_state_dict(tel)
        out = {}
        for (tk, _ts, _), (n, shape, _dt) in zip(tel, tfl):
            v = sd[tk]
            if n.endswith("/depthwise_weights"):
                v = v.reshape(shape[2], shape[3], shape[0], shape[1]).transpose(2, 3, 0, 1)
            elif n.endswith("/weights"):
                v = v.transpose(2, 3, 1, 0)
            assert tuple(v.shape) == tuple(shape), n
            out[n] = np.asarray(v, order="C")
        return out
    return syn.from_layout_json(layout_path)


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


# -- float noise: the yardstick for networks that synthetic weights make chaotic in float32 --------------------------
def assert_within_float_noise(ours32, noisy, ref, *, factor: float = 2.0, floor: float = 0.0, rel_floor: float = 0.0,
                              what: str = "") -> None:
    """Our float32 result is as close to the oracle (the authors' float32 run) as float32 rounding allows.

    A network that synthetic weights make chaotic amplifies rounding differently on every CPU (vector width,
    summation order), so a fixed tolerance is CPU-dependent. The noise is measured in the test instead: ``noisy`` is
    the same network in float64 (or with every weight moved by one float32 rounding) and says how far rounding moves
    OUR output; the oracle is another float32 rounding of the same maths, as far from the exact result as ours, so
    by the triangle inequality mean|ours32 - ref| <= mean|ours32 - exact| + mean|ref - exact| ~ 2 x the noise:
    mean|ours32 - ref| <= factor x mean|ours32 - noisy| + floor + rel_floor x max|ref|, factor 2 by default.
    ``noisy`` may be a function returning it: then it is computed only when the floors alone do not decide (on the
    oracles' own kernels our float32 run usually equals theirs, and a float64 twin of a large network is costly).
    Measured ratios: 1.0-1.3 with AVX-512 kernels (the oracles' own), up to 1.8 with ATEN_CPU_CAPABILITY=default
    (BGMv2-ResNet-101), where our rounding and the oracle's no longer share kernels; structural slips (a BN epsilon,
    align_corners, padding, a transposed kernel) move outputs 10-1000x the noise."""
    ours32, ref = (np.asarray(a, np.float64) for a in (ours32, ref))
    assert ours32.shape == ref.shape, what
    err = float(np.mean(np.abs(ours32 - ref)))
    floors = floor + rel_floor * float(np.abs(ref).max())
    if err <= floors:
        return
    noisy = np.asarray(noisy() if callable(noisy) else noisy, np.float64)
    noise = float(np.mean(np.abs(noisy - ours32)))
    bound = factor * noise + floors
    assert err <= bound, f"{what}: mean|ours - oracle| {err:.4g} > {factor} x float noise {noise:.4g} + floors"


def float64_copy(model):
    """The same loaded model computing in float64 (every network it runs; encode casts inputs to ``model.dtype``)."""
    import copy

    import torch

    return copy.deepcopy(model).to_dtype(torch.float64)


def perturbed(model, seed: int = 0):
    """The same model with every weight and statistic moved by a random relative 2**-24: another float32 rounding
    of it (a noise yardstick where float64 takes another code path)."""
    import copy

    m = copy.copy(model)
    m.net = copy.deepcopy(model.net)
    reperturb(m, model, seed)
    return m


def reperturb(noisy, model, seed: int) -> None:
    """Make ``noisy`` (a :func:`perturbed` copy of ``model``) the copy of seed ``seed``, in place: no second copy of
    a large network's weights."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for src, t in zip(list(model.net.parameters()) + list(model.net.buffers()),
                          list(noisy.net.parameters()) + list(noisy.net.buffers())):
            if t.is_floating_point():
                t.copy_(src)
                # x (1 + u), u uniform in [-2**-24, 2**-24): torch.rand's k / 2**53 makes 2**-23 r + (1 - 2**-24)
                # exactly that factor, computed in place (no temporaries: GFM-R101 has 540 M weights)
                r = torch.rand(t.shape, generator=g, dtype=torch.float64)
                t.mul_(r.mul_(2.0 ** -23).add_(1 - 2.0 ** -24))


def pytest_unconfigure(config):
    import shutil

    for d in _MADE_HERE:        # the controller's run-scoped folders (xdist workers inherit, never make, them)
        shutil.rmtree(d, ignore_errors=True)


def pytest_configure(config):
    # Faithfulness tests compare OUR network (torch) with the authors' code within float noise measured in torch;
    # what an engine (onnxruntime, OpenVINO) adds is judged against torch in tests/test_runtimes.py, which asks for
    # runtimes explicitly (its auto tests unset this). So the suite runs torch unless a test says otherwise. (Here,
    # not at import: benchmarks import this module for the oracles and must keep the default runtime.)
    os.environ.setdefault("MATTECLI_RUNTIME", "torch")
    # one folder for the whole run, shared by the xdist workers (made by the controller before it starts them; they
    # inherit it): synthetic weights, ONNX exports
    if "MATTECLI_TEST_RUN" not in os.environ:
        import tempfile

        os.environ["MATTECLI_TEST_RUN"] = tempfile.mkdtemp(prefix="mattecli-test-run-")
        _MADE_HERE.append(os.environ["MATTECLI_TEST_RUN"])
