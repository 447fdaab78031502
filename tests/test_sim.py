"""SIM (matting network + semantic-trimap classifier) against the oracles of the authors' code (nowsyn/SIM@dc5ed5a)."""
from __future__ import annotations

import numpy as np
import pytest

import mattecli
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError, UsageError, WeightsUnavailable
from trimap_model_helpers import (assert_within_float_noise, batch_of, batch_vs_singles, check_known, float64_copy,
                                  memoise_distance_channels, sample)

NET_INPUTS = ("image", "two_chan_trimap", "image_n", "trimap_transformed", "smap")


@pytest.fixture(scope="module")
def sim():
    from conftest import Oracle

    o, oc = Oracle("sim_matting"), Oracle("sim_classifier")
    official, clf = o.torch_weights(), oc.torch_weights()
    return o, oc, official, clf, mattecli.load_model("sim", weights=official, classifier_weights=clf)


def _rel_close(a, b, rtol=1e-4):
    """README: WS convs + BN with synthetic statistics give activations ~1e9: |a-b| <= rtol * max|ref|."""
    assert np.abs(a - b).max() <= rtol * np.abs(b).max()


def _aspp_and_out(net, x):
    import torch

    hooks = {}
    h = net.decoder.global_module.register_forward_hook(lambda mod, i, o_: hooks.__setitem__("aspp", o_))
    try:
        with torch.inference_mode():
            out = net(*x, aux=True)
    finally:
        h.remove()
    return hooks["aspp"], out


def test_network_matches_oracle(sim):
    import torch

    o, _, _, _, m = sim
    io = o.net_io()
    x = [torch.from_numpy(io[k]) for k in NET_INPUTS]
    aspp, out = _aspp_and_out(m.net, x)
    aspp64, out64 = _aspp_and_out(float64_copy(m).net, [t.double() for t in x])
    # the ~1e9-scale decoder amplifies float32 rounding differently on every CPU: judge the distance to the oracle
    # against the float32 noise of the same network (float64 run)
    assert_within_float_noise(aspp.numpy(), aspp64.numpy(), io["aspp_out"], what="aspp")
    assert_within_float_noise(out["alpha_raw"].numpy(), out64["alpha_raw"].numpy(), io["alpha_raw"], what="alpha_raw")
    # alpha is the clamp of a ~1e9-scale map: equal except where |raw| is within rounding of the clamp limits
    assert np.mean(np.abs(out["alpha"].numpy() - io["alpha"]) > 1e-3) < 1e-3
    for k in ("fg", "bg", "r1", "r2", "r3"):
        assert np.mean(np.abs(out[k].numpy() - io["train_" + k]) > 1e-3) < 1e-3, k


def test_classifier_matches_oracle(sim):
    import torch

    _, oc, _, _, m = sim
    io = oc.net_io()
    x = torch.from_numpy(io["input"])
    with torch.inference_mode():
        outs = m.classifier(x)
        outs64 = float64_copy(m).classifier(x.double())
    # a ResNet-50 classifier: float32 accumulation moves each value by ~1e-5 of its size, differently with every
    # CPU's kernels (ATEN_CPU_CAPABILITY=default: one pooled value 1.1e-4 off at 2.05); judged against the float
    # noise of our own network, as everywhere else, with a fixed tolerance as the ceiling of a structural error
    for ours, ours64, key, atol in zip(outs, outs64, ("logits", "cam", "pooled"), (1e-3, 1e-2, 1e-3)):
        assert_within_float_noise(ours.numpy(), ours64.numpy(), io[key], what=key)
        np.testing.assert_allclose(ours.numpy(), io[key], atol=atol, rtol=0, err_msg=key)


def test_pipeline_matches_oracle(sim):
    import torch

    o, _, _, _, m = sim
    io = o.pipeline_io()
    with torch.inference_mode():
        inputs, (trimap, smap) = m.encode(Batch.from_numpy(io["image_rgb_u8"], io["trimap_u8"]))
    for ours, ref in zip(inputs[:4] + (trimap,), ("padded_image_scale", "padded_trimap_2chn", "padded_image_trans",
                                                  "padded_trimap_clks", "padded_trimap")):
        np.testing.assert_allclose(ours.numpy(), io[ref], atol=1e-5, rtol=0, err_msg=ref)
    assert inputs[4] is smap or torch.equal(inputs[4], smap)
    np.testing.assert_allclose(smap.numpy(), io["semantic_trimap"], atol=1e-4, rtol=0)
    r = m.predict(io["image_rgb_u8"], io["trimap_u8"])
    assert r.alpha.shape == io["alpha"].shape
    assert np.mean(np.abs(r.alpha - io["alpha"]) > 1e-3) < 1e-3
    assert np.abs((r.alpha * 255).astype(np.uint8).astype(int) - io["alpha_u8"]).max() <= 1 or \
        np.mean((r.alpha * 255).astype(np.uint8) != io["alpha_u8"]) < 1e-3


def test_window_placement_uses_python_slicing():
    from mattecli.backends.sim.adapter import window_slices

    assert window_slices(216, 320) == [(112, 216)]          # negative start counts from the end
    assert window_slices(216, 800) == [(0, 216)]
    assert window_slices(640, 320) == [(0, 320), (160, 480), (320, 640)]
    assert window_slices(700, 320) == [(0, 320), (160, 480), (320, 640), (380, 700)]
    assert window_slices(320, 320) == [(0, 320)]


@pytest.mark.parametrize("hw", [(16, 8), (3, 5), (1, 2), (37, 53)])
def test_padding_always_adds_rows(hw):
    import cv2
    import torch

    from mattecli.backends.sim.adapter import pad_amount, pad_bottom_right

    h, w = hw
    a = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    p = pad_bottom_right(torch.from_numpy(a).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert p.shape[:2] == (h + pad_amount(h), w + pad_amount(w)) and p.shape[0] % 8 == 0
    assert np.array_equal(p, cv2.copyMakeBorder(a, 0, pad_amount(h), 0, pad_amount(w), cv2.BORDER_REFLECT))
    if hw == (16, 8):  # a full 8 px even when already a multiple of 8; BORDER_REFLECT repeats the edge
        assert p.shape[:2] == (24, 16)
        assert np.array_equal(p[16, :8], a[15]) and np.array_equal(p[:16, 8], a[:, 7])


@pytest.mark.parametrize("hw", [(48, 64), (37, 53)])
def test_other_sizes(sim, hw):
    _, _, _, _, m = sim
    img, tri = sample(*hw, seed=2)
    r = m.predict(img, tri)
    assert r.alpha.shape == hw
    check_known(r.alpha, tri)
    assert r.extras["semantic_trimap"].shape == (20,) + hw


def test_batch_of_two_equals_two_singles(sim):
    import torch

    o, _, _, _, m = sim
    io = o.net_io()
    x = [torch.from_numpy(io[k])[..., :48, :64] for k in NET_INPUTS]
    m64 = float64_copy(m)
    with torch.inference_mode():
        both = m.net(*[torch.cat([t, t.flip(-1)]) for t in x], aux=True)["alpha_raw"]
        one = m.net(*x, aux=True)["alpha_raw"]
        two = m.net(*[t.flip(-1) for t in x], aux=True)["alpha_raw"]
        one64 = m64.net(*[t.double() for t in x], aux=True)["alpha_raw"]
        two64 = m64.net(*[t.flip(-1).double() for t in x], aux=True)["alpha_raw"]
    assert_within_float_noise(both[0:1].numpy(), one64.numpy(), one.numpy(), what="item 0")
    assert_within_float_noise(both[1:2].numpy(), two64.numpy(), two.numpy(), what="item 1")


def test_predict_batch_equals_singles(sim, monkeypatch):
    import mattecli.backends.sim.adapter as adapter

    _, _, _, _, m = sim
    memoise_distance_channels(monkeypatch, adapter)
    batch = batch_of([sample(40, 52, seed=5), sample(40, 52, seed=6)])
    pred = m.predict_batch(batch)
    assert pred.alpha.shape == (2, 1, 40, 52) and pred.extras["semantic_trimap"].shape == (2, 20, 40, 52)
    # float64: the per-item windows, min-max normalisation and crop; only output rounding is left
    m64 = float64_copy(m)
    assert batch_vs_singles(m64, batch) <= 1e-6
    for i in range(2):
        one, one64 = m.predict_batch(batch.slice(i, i + 1)), m64.predict_batch(batch.slice(i, i + 1))
        # float32: the classifier on a batch of windows sums in another order; its semantic trimap must be within
        # float32 noise (alpha, the clamp of a ~1e9-scale map, is compared in float64 above)
        smap = pred.extras["semantic_trimap"][i:i + 1].numpy()
        assert_within_float_noise(one.extras["semantic_trimap"].numpy(), one64.extras["semantic_trimap"].numpy(),
                                  smap, what=f"semantic trimap {i}")
        check_known(pred.result(i).alpha, batch.trimap[i, 0].numpy())


def test_one_item_without_unknown_pixels(sim):
    _, _, _, _, m = sim
    img, tri = sample(40, 52, seed=7)
    known = np.where(tri == 128, 255, tri).astype(np.uint8)
    pred = m.predict_batch(batch_of([(img, tri), (img, known)]))
    r = pred.result(1)
    assert np.array_equal(r.alpha, (known == 255).astype(np.float32))
    assert not r.extras["semantic_trimap"].any()
    assert pred.result(0).extras["semantic_trimap"].any()


def test_bad_options_refused_at_load(sim):
    _, _, official, clf, _ = sim
    with pytest.raises(UsageError, match="classifier_weights"):
        mattecli.load_model("sim", weights=official, classifier_weights=12)
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("sim", weights=official, classifier_weights=clf, tta=True)


@pytest.fixture(scope="module")
def sim_files(sim, tmp_path_factory):
    """Both files written once in the authors' wrappings."""
    from mattecli.registry import resolve

    _, _, official, clf, m = sim
    conv, clf_spec = m.converter, _classifier_spec(m)
    d = tmp_path_factory.mktemp("sim_files")
    mp, cp = d / "ckpt_best.pth", d / "classifier_resnet50_best.pth.tar"
    conv.write(conv.to_ours(official, m.spec), mp, m.spec)
    conv.write(conv.to_ours(clf, clf_spec), cp, clf_spec)
    assert resolve("sim.classifier")[1] is clf_spec.weights_set
    return mp, cp


def _classifier_spec(m):
    from mattecli.backends.base import ModelSpec

    return ModelSpec(m.entry, m.entry.weight_set("classifier"), m.options)


def test_converter_round_trip(sim, sim_files, tmp_path):
    import torch

    _, _, official, clf, m = sim
    mp, cp = sim_files
    assert set(torch.load(mp, weights_only=True)) == {"epoch", "state_dict", "best_sad"}
    c = torch.load(cp, weights_only=True)
    assert set(c) == {"state_dict"} and all(k.startswith("module.") for k in c["state_dict"])
    m2 = mattecli.load_model("sim.adobe", weights=str(mp), classifier_weights=str(cp))
    sd = m2.net.state_dict()
    for k, v in m.net.state_dict().items():
        assert torch.equal(v, sd[k]), k
    sd = m2.classifier.state_dict()
    for k, v in m.classifier.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # plain state dict (no wrapper) is the other wrapping the authors' loader accepts
    torch.save(dict(official), tmp_path / "plain.pth")
    ours = m.converter.to_ours(m.converter.read(tmp_path / "plain.pth", m.spec), m.spec)
    assert all(torch.equal(ours[k], official[k]) for k in official)
    # the classifier's file through the converter of its weight set, and back
    spec = _classifier_spec(m)
    back = m.converter.to_official(m.converter.convert_file(cp, spec)[0], spec)
    assert set(back) == set(c["state_dict"]) and all(torch.equal(back[k], c["state_dict"][k]) for k in back)
    assert m.converter.convert_file(mp, m.spec)[1] == {"part": "matting"}


def test_converter_rejects_leftover_and_missing(sim):
    _, _, official, clf, m = sim
    extra = dict(official)
    extra["decoder.extra"] = official["encoder.bn1.bias"]
    with pytest.raises(ConverterError, match="unexpected keys decoder.extra"):
        m.converter.to_ours(extra, m.spec)
    missing = {"module." + k: v for k, v in clf.items() if k != "fc.bias"}
    with pytest.raises(ConverterError, match="missing key 'fc.bias'"):
        m.converter.to_ours(missing, _classifier_spec(m))
    with pytest.raises(ConverterError, match="missing key 'fc.bias'"):
        mattecli.load_model("sim", weights=official, classifier_weights=missing)


def test_missing_weights_messages(isolated_home, sim):
    _, _, official, _, _ = sim
    with pytest.raises(WeightsUnavailable) as e:
        mattecli.load_model("sim")
    msg = str(e.value)
    assert "ckpt_best.pth" in msg and "drive.google.com" in msg and "mattecli models import sim " in msg
    assert "licence" in msg
    with pytest.raises(WeightsUnavailable) as e:
        mattecli.load_model("sim", weights=official)              # matting weights given, classifier not cached
    msg = str(e.value)
    assert "classifier_resnet50_best.pth.tar" in msg and "mattecli models import sim.classifier" in msg
    with pytest.raises(UsageError, match="not a matting model"):
        mattecli.load_model("sim.classifier", weights=official)


def test_models_import_of_both_files_then_load_from_cache(sim, sim_files, isolated_home):
    from mattecli.backends.install import import_file
    from mattecli.registry import resolve

    _, _, official, clf, m = sim
    mp, cp = sim_files
    import_file(*resolve("sim"), mp, echo=None, progress=False)
    import_file(*resolve("sim.classifier"), cp, echo=None, progress=False)
    m2 = mattecli.load_model("sim")
    import torch

    sd = m2.classifier.state_dict()
    for k, v in m.classifier.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert torch.equal(m2.net.state_dict()["encoder.conv1.weight"], official["encoder.conv1.weight"])
