"""Runtimes (backends/runtimes): every exportable family gives the torch path's numbers on onnxruntime (and OpenVINO
when installed); the export cache is keyed and sha256-checked; RVM carries its state on an engine; a family that
cannot export says why; ``auto`` follows the registry and falls back to torch."""
from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pytest
import torch

import mattecli
from mattecli.backends.base import Batch
import mattecli.backends.runtimes.choose as choose_mod
from mattecli.backends.runtimes import hook, kernels
from mattecli.errors import UsageError
from conftest import assert_within_float_noise, perturbed

pytestmark = pytest.mark.shared
HAVE_OV = importlib.util.find_spec("openvino") is not None
# (not under ONEDNN_MAX_CPU_ISA, which OpenVINO does not survive: choose.why_unsupported)
ENGINES = ["onnxruntime"] + (["openvino"] if HAVE_OV and choose_mod.engine_supports("openvino", "cpu") else [])


def _auto(name):
    """(the runtime auto picks for ``name`` on this CPU, the start of its reason)."""
    from mattecli.registry import resolve

    prefs = resolve(name)[0].runtimes["cpu"]
    runnable = [r for r in prefs if choose_mod.installed(r) and choose_mod.engine_supports(r, "cpu")]
    return runnable[0], ("auto: measured fastest on cpu" if runnable[0] == prefs[0] else
                         "auto: measured next fastest on cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _fresh(isolated_home, monkeypatch):
    monkeypatch.delenv("MATTECLI_RUNTIME", raising=False)   # the suite pins torch elsewhere (conftest); not here
    hook.forget()        # every test exports into its own MATTECLI_HOME
    yield isolated_home
    hook.forget()


#: entry -> (oracle folder, load options, size, atol on alpha/foreground, share of values allowed beyond it)
FAMILIES = {
    "modnet": ("modnet_mobilenetv2", {"ref_size": 64}, (37, 53), 1e-4, 0.0),
    "bgmv2": ("bgmv2_resnet50", {}, (37, 53), 1e-4, 0.0),
    "bisenetv2.cocostuff": ("bisenetv2_coco", {}, (37, 53), 1e-4, 0.0),
    "dim": ("dim_huochaitiantang-vgg16-skip-stage1", {}, (64, 96), 1e-4, 0.0),
    "dim.foamliu": ("dim_foamliu-segnet", {}, (37, 53), 1e-4, 0.0),
    "fba": ("fba_resnet50-gn-ws", {}, (37, 53), 2e-3, 0.0),
    "ppmatting": ("ppmatting_hrnet-w18-human", {}, (37, 53), 1e-2, 0.0),
    "sim": ("sim_matting", {"classifier_weights": "sim_classifier"}, (37, 53), 2e-3, 0.0),
    "bgm": ("bgmv1_netg", {"segmenter": None}, (37, 53), 2e-2, 0.0),   # uint8 round trips inside the pipeline
    "cam.lap": ("conmat_lap", {}, (33, 45), 1e-2, 0.0),
    # GFM thresholds its glance maps by argmax: where two classes tie to float32 rounding a pixel flips (torch fp32
    # does the same against fp64), so a few pixels may differ fully
    "gfm": ("gfm_r34_tt", {}, (37, 53), 2e-3, 0.01),
}


def _weights(folder):
    from conftest import Oracle

    return Oracle(folder).torch_weights()


def _inputs(entry, h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kw = {}
    if "trimap" in entry.requires:
        yy, xx = np.mgrid[0:h, 0:w]
        r = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.35 * w)) ** 2
        tri = np.zeros((h, w), np.uint8)
        tri[r < 1.5] = 128
        tri[r < 0.5] = 255
        kw["trimap"] = tri
    if "background" in entry.requires:
        kw["background"] = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    return img, kw


def _predict(m, img, kw):
    if m.entry.family == "bgm":
        h, w = img.shape[:2]
        seg = np.zeros((h, w), np.uint8)
        seg[h // 5:, w // 4:3 * w // 4] = 255
        return m.predict_batch(Batch.from_numpy(img, None, kw["background"]), segmentation=[seg]).result(0)
    return m.predict(img, **kw)


def _close(got, ref, atol, share, noisy):
    """The engine's ``got`` is torch's ``ref``: at most ``share`` of the values beyond ``atol``; else (a network that
    synthetic weights make chaotic flips a few saturated values when the kernels sum in another order: measured on
    PP-Matting with ONEDNN_MAX_CPU_ISA=SSE41, 2 pixels of 1961 off by > 0.01 at 0.94x the noise) the engine is
    within the float noise of torch itself: ``noisy()`` is torch's output with every weight moved by one float32
    rounding (conftest.perturbed), and two float32 runs of the same maths are up to 2x that noise apart."""
    if got is None or ref is None:
        assert got is None and ref is None
        return
    off = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64)) > atol
    if off.mean() <= share:
        return
    assert_within_float_noise(ref, noisy, got, factor=2.0,
                              what=f"{off.mean():.2%} of the values differ by more than {atol}, and on average")


def _engine_ran(m):
    calls = m._engine_calls
    return bool(calls) and all(c.sigs and all(s is not None for s in c.sigs.values()) for c in calls)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ENGINES)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_engine_gives_the_torch_numbers(name, runtime, monkeypatch):
    from conftest import run_dir

    # the export cache is keyed by the weights, not the runtime: both engines of a family read one export, made by
    # whichever test of the run comes first (the other waits on its lock), so each family is exported once per run
    monkeypatch.setenv("MATTECLI_HOME", str(run_dir(f"engine-homes/{name}")))
    folder, opts, (h, w), atol, share = FAMILIES[name]
    weights = _weights(folder)
    opts = {k: (_weights(v) if k == "classifier_weights" else v) for k, v in opts.items()}
    ref_model = mattecli.load_model(name, weights=weights, runtime="torch", **opts)
    m = mattecli.load_model(name, weights=weights, runtime=runtime, **opts)
    assert m.runtime.name == runtime and runtime in m.runtime_line()
    if name == "bgm":       # crops of 128x128 instead of the official 512x512: the same network, 1/16 of the work
        ref_model.reso = m.reso = 128
    sizes = [(0, (h, w))]
    if runtime == "onnxruntime" and name != "bgm":   # a second size: one dynamic export serves both (BGM v1 always
        sizes.append((1, (h + 8, w - 5)))            # sees 512x512 crops; one engine shows the export is dynamic)
    noisy_model = functools.cache(lambda: perturbed(ref_model))
    for seed, size in sizes:
        img, kw = _inputs(m.entry, *size, seed=seed)
        ref, got = _predict(ref_model, img, kw), _predict(m, img, kw)
        noisy = functools.cache(lambda: _predict(noisy_model(), img, kw))
        _close(got.alpha, ref.alpha, atol, share, lambda: noisy().alpha)
        _close(got.foreground, ref.foreground, atol, max(share, 0.01 if name == "cam.lap" else 0.0),
               lambda: noisy().foreground)
    assert _engine_ran(m), "the engine did not run (it fell back to torch)"
    from mattecli.weights import home

    exports = list((home() / "runtimes" / m.entry.name).glob("*/model.onnx"))
    assert len(exports) == len(m.runtime_parts)


# -- RVM -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rvm_weights():
    from conftest import Oracle

    return Oracle("rvm_mobilenetv3").torch_weights()


@pytest.mark.parametrize("runtime", ENGINES)
@pytest.mark.parametrize("ratio", [None, 0.25, 0.4])
def test_rvm_state_is_carried_on_the_engine(runtime, ratio, rvm_weights):
    """Frame by frame on the engine == eager torch frame by frame (states carried on both sides); a batch of 4 is
    4 calls of 1 bit for bit; the state matters and reset() clears it."""
    m = mattecli.load_model("rvm", weights=rvm_weights, runtime=runtime, downsample_ratio=ratio)
    t = mattecli.load_model("rvm", weights=rvm_weights, runtime="torch", downsample_ratio=ratio)
    rng = np.random.default_rng(3)
    frames = torch.from_numpy(rng.integers(0, 256, (8, 3, 48, 66), dtype=np.uint8))
    one = [m.predict_batch(Batch(frames[i:i + 1])) for i in range(8)]
    ref = [t.predict_batch(Batch(frames[i:i + 1])) for i in range(8)]
    for a, b in zip(one, ref):
        torch.testing.assert_close(a.alpha, b.alpha, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.foreground, b.foreground, atol=1e-4, rtol=0)
    assert _engine_ran(m)
    m.reset()
    four = [m.predict_batch(Batch(frames[i:i + 4])) for i in (0, 4)]
    assert torch.equal(torch.cat([p.alpha for p in one]), torch.cat([p.alpha for p in four]))
    assert torch.equal(torch.cat([p.foreground for p in one]), torch.cat([p.foreground for p in four]))
    m.reset()
    first = m.predict_batch(Batch(frames[5:6])).alpha
    assert (first - one[5].alpha).abs().max() > 1e-4       # the carried state changed frame 5's result
    m.reset()
    assert torch.equal(m.predict_batch(Batch(frames[5:6])).alpha, first)
    # uint8 frames and the same frames / 255 in float32 give the same numbers
    m.reset()
    f = m.predict_batch(Batch(frames[:2].float() / 255)).alpha
    m.reset()
    assert torch.equal(f, m.predict_batch(Batch(frames[:2])).alpha)


def test_rvm_torch_runs_when_hooks_or_float64_ask_for_it(rvm_weights):
    m = mattecli.load_model("rvm", weights=rvm_weights, runtime="onnxruntime")
    seen = []
    h = m.net.project_mat.register_forward_hook(lambda *a: seen.append(1))
    m.predict(np.zeros((40, 56, 3), np.uint8))
    h.remove()
    assert seen and not any(c.sigs for c in m._engine_calls)
    m.reset()
    m.to_dtype(torch.float64)
    m.predict(np.zeros((40, 56, 3), np.uint8))
    assert not any(c.sigs for c in m._engine_calls)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size", [(1080 // 8, 1920 // 8), (37, 53)])
def test_full_size_kernels_match_torch(dtype, size):
    import torch.nn.functional as F

    H, W = size
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, H, W, generator=g) * 255).to(torch.uint8)
    x = x if dtype == torch.uint8 else x.float() / 255
    xf = x.float() / 255 if dtype == torch.uint8 else x
    for ratio in (0.25, 0.4, 1 / 3):
        small = kernels.downsample(x, ratio)
        ref = F.interpolate(xf[None], scale_factor=ratio, mode="bilinear", align_corners=False,
                            recompute_scale_factor=False)
        torch.testing.assert_close(small, ref, atol=1e-6, rtol=0)
    ab = torch.randn(8, small.shape[-2], small.shape[-1], generator=g) * 0.3
    fgr, pha = kernels.guided_apply(ab, x)
    up = F.interpolate(ab[None], (H, W), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(fgr, (up[0:3] * xf + up[4:7] + xf).clamp(0, 1), atol=2e-5, rtol=0)
    torch.testing.assert_close(pha, (xf.mean(0, keepdim=True) * up[3:4] + up[7:8]).clamp(0, 1), atol=2e-5, rtol=0)
    assert fgr.permute(1, 2, 0).is_contiguous()          # HWC underneath: the numpy result needs no copy


# -- the export cache ------------------------------------------------------------------------------------------
def _modnet(runtime="onnxruntime"):
    from conftest import Oracle

    return mattecli.load_model("modnet", weights=Oracle("modnet_mobilenetv2").torch_weights(), runtime=runtime,
                               ref_size=64)


def test_export_is_cached_with_sha256_and_reused(isolated_home):
    from mattecli.weights import integrity

    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    a = _modnet().predict(img).alpha
    folders = [p.parent for p in (isolated_home / "runtimes" / "modnet").glob("*/model.onnx")]
    assert len(folders) == 1
    files = sorted(p.name for p in folders[0].iterdir())
    assert files == ["checked-onnxruntime.json", "checked-onnxruntime.json.sha256", "meta.json", "meta.json.sha256",
                     "model.onnx", "model.onnx.sha256"]
    for f in ("model.onnx", "meta.json", "checked-onnxruntime.json"):
        assert integrity.recorded(folders[0] / f) == integrity.file_sha256(folders[0] / f)
    stamp = (folders[0] / "model.onnx").stat().st_mtime_ns
    hook.forget()                                           # a new process, as far as the cache is concerned
    b = _modnet().predict(img).alpha
    assert (folders[0] / "model.onnx").stat().st_mtime_ns == stamp   # read back, not exported again
    np.testing.assert_array_equal(a, b)


def test_processes_needing_one_export_at_once_make_it_once(tmp_path):
    """Two callers of the same export at the same time: one exports, the other waits on the lock and reads it."""
    import threading
    import time

    from mattecli.backends.runtimes import cache

    calls, started = [], threading.Event()

    def export(path):
        calls.append(path)
        started.set()
        time.sleep(0.5)        # the second caller arrives while this export is still being written
        path.write_bytes(b"onnx bytes")

    results = []
    first = threading.Thread(target=lambda: results.append(cache.load_or_export(tmp_path, "k1", export, {})))
    first.start()
    assert started.wait(10)
    results.append(cache.load_or_export(tmp_path, "k1", export, {}))
    first.join()
    assert len(calls) == 1
    assert sorted(fresh for _, fresh in results) == [False, True]
    assert results[0][0] == results[1][0] == tmp_path / "k1" / "model.onnx"
    assert not list(tmp_path.glob(".k1.*.tmp"))


@pytest.mark.parametrize("damage", ["bytes", "record"])
def test_damaged_export_is_refused_and_rebuilt(isolated_home, capfd, damage):
    from mattecli.weights import integrity

    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    a = _modnet().predict(img).alpha
    model = next((isolated_home / "runtimes" / "modnet").glob("*/model.onnx"))
    if damage == "bytes":
        with open(model, "r+b") as f:
            f.seek(model.stat().st_size // 2)
            f.write(b"\x00\x01\x02\x03")
    else:
        integrity.forget(model)
    hook.forget()
    capfd.readouterr()
    b = _modnet().predict(img).alpha
    err = capfd.readouterr().err
    assert "refusing a damaged cached ONNX export" in err and str(model) in err
    assert integrity.recorded(model) == integrity.file_sha256(model)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("tamper", [False, True])
def test_recorded_check_spares_torch_in_later_processes(isolated_home, monkeypatch, tamper):
    """The first-call check against torch is recorded next to the export; a later process runs the engine alone,
    unless the record does not verify (then torch runs once more and the check is made again)."""
    from mattecli.backends.modnet.net import MODNet

    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    a = _modnet().predict(img).alpha
    record = next((isolated_home / "runtimes" / "modnet").glob("*/checked-onnxruntime.json"))
    if tamper:
        record.write_text(record.read_text().replace("onnxruntime", "onnxruntimE"))
    hook.forget()
    calls = []
    forward = MODNet.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(MODNet, "forward", counting)
    b = _modnet().predict(img).alpha
    np.testing.assert_array_equal(a, b)
    assert len(calls) == (1 if tamper else 0)


def test_cache_key_follows_weights_exporter_and_constants():
    from mattecli.backends.runtimes import cache
    from mattecli.backends.runtimes.export import exporter_id, flatten_call

    m = _modnet("torch")
    d1 = cache.weights_digest(m.net)
    with torch.no_grad():
        next(m.net.parameters()).add_(1.0)
    assert cache.weights_digest(m.net) != d1
    x = torch.zeros(1, 3, 32, 32)
    assert flatten_call((x, True), {}).constants_repr() != flatten_call((x, False), {}).constants_repr()
    assert flatten_call((x,), {}).signature(False) == flatten_call((torch.zeros(2, 3, 64, 48),), {}).signature(False)
    assert flatten_call((x,), {}).signature(True) != flatten_call((torch.zeros(2, 3, 64, 48),), {}).signature(True)
    base = dict(weights=d1, part="net", exporter=exporter_id(), constants="c", signature="s", static=False)
    assert cache.export_key(**base) != cache.export_key(**{**base, "exporter": "other"})
    assert cache.export_key(**base) != cache.export_key(**{**base, "static": True})


# -- choosing -------------------------------------------------------------------------------------------------
def test_family_that_cannot_export_says_why():
    from conftest import Oracle

    w = Oracle("gca_dist-all-data").torch_weights()
    with pytest.raises(UsageError, match="guided contextual attention"):
        mattecli.load_model("gca", weights=w, runtime="onnxruntime")
    m = mattecli.load_model("gca", weights=w)
    assert m.runtime.name == "torch" and "guided contextual attention" in m.runtime_line()
    with pytest.raises(UsageError, match="no network"):
        mattecli.load_model("closed-form", runtime="openvino")
    assert mattecli.load_model("closed-form", runtime="auto").runtime.name == "torch"


def test_auto_follows_the_registry_and_falls_back(monkeypatch, rvm_weights):
    from mattecli.registry import resolve

    entry, _ = resolve("rvm")
    assert entry.runtimes["cpu"][0] in ("openvino", "onnxruntime")
    m = mattecli.load_model("rvm", weights=rvm_weights)
    auto, why = _auto("rvm")
    assert m.runtime.name == auto and why in m.runtime_line()
    monkeypatch.setattr(choose_mod, "installed", lambda name: name == "torch")
    m = mattecli.load_model("rvm", weights=rvm_weights)
    assert m.runtime.name == "torch" and "not installed" in m.runtime_line() and "pip install" in m.runtime_line()
    with pytest.raises(UsageError, match="pip install"):
        mattecli.load_model("rvm", weights=rvm_weights, runtime="onnxruntime")
    with pytest.raises(UsageError, match="unknown runtime"):
        mattecli.load_model("rvm", weights=rvm_weights, runtime="tensorflow")
    monkeypatch.setenv("MATTECLI_RUNTIME", "torch")
    assert mattecli.load_model("rvm", weights=rvm_weights).runtime.requested == "torch"


def test_a_cpu_instruction_cap_keeps_openvino_out(monkeypatch, rvm_weights):
    """OpenVINO's CPU plugin does not survive ONEDNN_MAX_CPU_ISA below the CPU's own instructions (a crashed
    process, measured): while it is set, auto takes the next runtime and says why; --runtime openvino is a usage
    error naming the variable."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    m = mattecli.load_model("rvm", weights=rvm_weights)
    assert m.runtime.name == "onnxruntime"
    assert "measured next fastest on cpu (openvino: OpenVINO fails or crashes while ONEDNN_MAX_CPU_ISA" in \
        m.runtime_line()
    with pytest.raises(UsageError, match="ONEDNN_MAX_CPU_ISA caps .*unset it.*--runtime torch or auto"):
        mattecli.load_model("rvm", weights=rvm_weights, runtime="openvino")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")          # oneDNN's own "no cap"
    assert choose_mod.engine_supports("openvino", "cpu") == HAVE_OV


def test_bf16_and_float64_stay_on_torch(rvm_weights):
    m = mattecli.load_model("rvm", weights=rvm_weights, precision="bf16")
    assert m.runtime.name == "torch" and "bfloat16" in m.runtime_line()
    with pytest.raises(UsageError, match="fp32"):
        mattecli.load_model("rvm", weights=rvm_weights, precision="bf16", runtime="onnxruntime")


# -- the command line ------------------------------------------------------------------------------------------------
def test_cli_runtime_flag_first_line_and_same_alpha(tmp_path):
    """``--runtime`` on ``matte``: the run's first line names the runtime and why; an engine's 8-bit alpha is the
    torch run's within one level; auto says which runtime it measured fastest; runtimes that cannot run are usage
    errors before any work."""
    import cv2

    from conftest import Oracle
    from fault_helpers import run_cli

    w = tmp_path / "modnet.ckpt"
    torch.save(Oracle("modnet_mobilenetv2").torch_weights(), w)
    img = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "img.png"), img)
    home = tmp_path / "home"
    base = ["matte", "img.png", "-m", "modnet", "--weights", w, "--option", "ref_size=64"]

    def run(*extra):
        return run_cli([*base, *extra], tmp_path, home, timeout=300)

    t, o, a = run("--runtime", "torch", "-o", "t/"), run("--runtime", "onnxruntime", "-o", "o/"), run("-o", "a/")
    for p in (t, o, a):
        assert p.returncode == 0, p.stderr
    first = [p.stderr.splitlines()[0] for p in (t, o, a)]
    assert first[0] == "mattecli: matte: 1 input(s) with modnet, runtime torch (asked for)"
    assert first[1] == "mattecli: matte: 1 input(s) with modnet, runtime onnxruntime (asked for)"
    auto, why = _auto("modnet")
    assert first[2].startswith(f"mattecli: matte: 1 input(s) with modnet, runtime {auto} ({why}")
    ref = cv2.imread(str(tmp_path / "t" / "img_alpha.png"), cv2.IMREAD_UNCHANGED).astype(int)
    for folder in ("o", "a"):
        got = cv2.imread(str(tmp_path / folder / "img_alpha.png"), cv2.IMREAD_UNCHANGED).astype(int)
        assert np.abs(got - ref).max() <= 1
    bad = run("--runtime", "tensorflow", "-o", "x/")
    assert bad.returncode == 2 and "unknown runtime" in bad.stderr
    cv2.imwrite(str(tmp_path / "tri.png"), np.full((48, 64), 128, np.uint8))
    cf = run_cli(["matte", "img.png", "--trimap", "tri.png", "-m", "closed-form", "--runtime", "openvino", "-o",
                  "x/"], tmp_path, home)
    assert cf.returncode == 2 and "no network" in cf.stderr and "--runtime auto or torch" in cf.stderr
    tri = run_cli(["trimap", "--mask", "img.png", "--runtime", "onnxruntime", "-o", "x/"], tmp_path, home)
    assert tri.returncode == 2 and "--segmenter only" in tri.stderr
    assert not (tmp_path / "x").exists()


def test_models_info_says_what_auto_picks():
    from typer.testing import CliRunner

    from mattecli.cli.app import app

    r = CliRunner().invoke(app, ["models", "info", "rvm"])
    assert r.exit_code == 0
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("runtime (cpu):"))
    assert _auto("rvm")[1] in line and "measured order openvino, onnxruntime" in line
    r = CliRunner().invoke(app, ["models", "info", "gca"])
    assert "runtime (cpu): torch (exports nothing" in r.stdout
