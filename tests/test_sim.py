"""SIM (matting network + semantic-trimap classifier) against the oracles of the authors' code (nowsyn/SIM@dc5ed5a)."""
from __future__ import annotations

import numpy as np
import pytest

import mattecli
from mattecli.errors import ConverterError, UsageError, WeightsUnavailable
from trimap_model_helpers import check_known, sample


@pytest.fixture(scope="module")
def sim():
    from conftest import Oracle

    o, oc = Oracle("sim_matting"), Oracle("sim_classifier")
    official, clf = o.torch_weights(), oc.torch_weights()
    return o, oc, official, clf, mattecli.load_model("sim", weights=official, classifier_weights=clf)


def _rel_close(a, b, rtol=1e-4):
    """README: WS convs + BN with synthetic statistics give activations ~1e9: |a-b| <= rtol * max|ref|."""
    assert np.abs(a - b).max() <= rtol * np.abs(b).max()


def test_network_matches_oracle(sim):
    import torch

    o, _, _, _, m = sim
    io = o.net_io()
    x = [torch.from_numpy(io[k]) for k in ("image", "two_chan_trimap", "image_n", "trimap_transformed", "smap")]
    with torch.inference_mode():
        out = m.net(*x, aux=True)
        hooks = {}
        h = m.net.decoder.global_module.register_forward_hook(lambda mod, i, o_: hooks.__setitem__("aspp", o_))
        m.net(*x)
        h.remove()
    _rel_close(hooks["aspp"].numpy(), io["aspp_out"])
    _rel_close(out["alpha_raw"].numpy(), io["alpha_raw"])
    # alpha is the clamp of a ~1e9-scale map: equal except where |raw| is within rounding of the clamp limits
    assert np.mean(np.abs(out["alpha"].numpy() - io["alpha"]) > 1e-3) < 1e-3
    for k in ("fg", "bg", "r1", "r2", "r3"):
        assert np.mean(np.abs(out[k].numpy() - io["train_" + k]) > 1e-3) < 1e-3, k


def test_classifier_matches_oracle(sim):
    import torch

    _, oc, _, _, m = sim
    io = oc.net_io()
    with torch.inference_mode():
        logits, cam, pooled = m.classifier(torch.from_numpy(io["input"]))
    np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(cam.numpy(), io["cam"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(pooled.numpy(), io["pooled"], atol=1e-4, rtol=0)


def test_pipeline_matches_oracle(sim):
    import torch

    o, _, _, _, m = sim
    io = o.pipeline_io()
    inp = m.prepare(io["image_rgb_u8"], io["trimap_u8"])
    for ours, ref in (("image_scale", "padded_image_scale"), ("image_trans", "padded_image_trans"),
                      ("trimap", "padded_trimap"), ("trimap_2chn", "padded_trimap_2chn"),
                      ("trimap_clks", "padded_trimap_clks")):
        np.testing.assert_allclose(inp[ours].numpy(), io[ref], atol=1e-5, rtol=0, err_msg=ours)
    with torch.inference_mode():
        smap = m.semantic_trimap(inp["image_trans"], inp["trimap"])
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


def test_padding_always_adds_rows():
    from mattecli.backends.sim.adapter import pad_bottom_right

    a = np.arange(16 * 8, dtype=np.uint8).reshape(16, 8)
    p = pad_bottom_right(a)
    assert p.shape == (24, 16)                                # a full 8 px even when already a multiple of 8
    assert np.array_equal(p[16, :8], a[15]) and np.array_equal(p[:16, 8], a[:, 7])  # BORDER_REFLECT repeats the edge


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
    x = [torch.from_numpy(io[k])[..., :48, :64] for k in
         ("image", "two_chan_trimap", "image_n", "trimap_transformed", "smap")]
    with torch.inference_mode():
        both = m.net(*[torch.cat([t, t.flip(-1)]) for t in x], aux=True)["alpha_raw"]
        one = m.net(*x, aux=True)["alpha_raw"]
        two = m.net(*[t.flip(-1) for t in x], aux=True)["alpha_raw"]
    _rel_close(both[0:1].numpy(), one.numpy())
    _rel_close(both[1:2].numpy(), two.numpy())


@pytest.fixture(scope="module")
def sim_files(sim, tmp_path_factory):
    """Both files written once in the authors' wrappings."""
    from mattecli.backends.sim import convert

    _, _, official, clf, _ = sim
    d = tmp_path_factory.mktemp("sim_files")
    mp, cp = d / "ckpt_best.pth", d / "classifier_resnet50_best.pth.tar"
    convert.write_checkpoint(convert.to_ours(official), mp)
    convert.write_classifier_checkpoint(convert.classifier_to_ours(clf), cp)
    return mp, cp


def test_converter_round_trip(sim, sim_files, tmp_path):
    import torch

    from mattecli.backends.sim import convert

    _, _, official, clf, m = sim
    mp, cp = sim_files
    assert set(torch.load(mp, weights_only=True)) == {"epoch", "state_dict", "best_sad"}
    c = torch.load(cp, weights_only=True)
    assert set(c) == {"state_dict"} and all(k.startswith("module.") for k in c["state_dict"])
    m2 = mattecli.load_model("sim.adobe", weights=str(mp), classifier_weights=str(cp))
    for k, v in m.net.state_dict().items():
        assert torch.equal(v, m2.net.state_dict()[k]), k
    for k, v in m.classifier.state_dict().items():
        assert torch.equal(v, m2.classifier.state_dict()[k]), k
    # plain state dict (no wrapper) is the other wrapping the authors' loader accepts
    torch.save(dict(official), tmp_path / "plain.pth")
    ours = convert.to_ours(convert.read_checkpoint(tmp_path / "plain.pth"))
    assert all(torch.equal(ours[k], official[k]) for k in official)


def test_converter_rejects_leftover_and_missing(sim):
    from mattecli.backends.sim import convert

    _, _, official, clf, _ = sim
    extra = dict(official)
    extra["decoder.extra"] = official["encoder.bn1.bias"]
    with pytest.raises(ConverterError, match="unexpected keys decoder.extra"):
        convert.to_ours(extra)
    missing = {"module." + k: v for k, v in clf.items() if k != "fc.bias"}
    with pytest.raises(ConverterError, match="missing key 'fc.bias'"):
        convert.classifier_to_ours(missing)


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
    from mattecli.registry import resolve
    from mattecli.weights.store import import_file

    _, _, official, clf, m = sim
    mp, cp = sim_files
    import_file(*resolve("sim"), mp, echo=None, progress=False)
    import_file(*resolve("sim.classifier"), cp, echo=None, progress=False)
    m2 = mattecli.load_model("sim")
    import torch

    for k, v in m.classifier.state_dict().items():
        assert torch.equal(v, m2.classifier.state_dict()[k]), k
    assert torch.equal(m2.net.state_dict()["encoder.conv1.weight"], official["encoder.conv1.weight"])
