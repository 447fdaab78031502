"""GCA Matting against the oracle of the authors' code (Yaoyi-Li/GCA-Matting@5a999be), converter, tiling, errors."""
from __future__ import annotations

import numpy as np
import pytest

import mattecli
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError, UsageError, WeightsUnavailable
from trimap_model_helpers import batch_of, batch_vs_singles, check_known, float64_copy, sample

FOLDER = "gca_dist-all-data"


@pytest.fixture(scope="module")
def gca():
    from conftest import Oracle

    o = Oracle(FOLDER)
    official = o.torch_weights()
    return o, official, mattecli.load_model("gca", weights=official)


def test_network_matches_oracle(gca):
    import torch

    o, _, m = gca
    io = o.net_io()
    with torch.inference_mode():
        alpha, info = m.net(torch.from_numpy(io["image"]), torch.from_numpy(io["trimap"]))
    np.testing.assert_allclose(alpha.numpy(), io["alpha"], atol=1e-5, rtol=0)
    for i in (1, 2):
        off, scale = info[f"offset_{i}"]
        assert (off.numpy() != io[f"offset_{i}"]).mean() <= 0.02  # exact up to a rare argmax tie
        np.testing.assert_allclose(scale.numpy(), io[f"softmax_scale_{i}"], atol=1e-6, rtol=0)


def test_pipeline_matches_oracle(gca):
    o, _, m = gca
    io = o.pipeline_io()
    (img, tri), cls = m.encode(Batch.from_numpy(io["image_rgb_u8"], io["trimap_u8"]))
    np.testing.assert_allclose(img.numpy(), io["net_input_image"], atol=1e-5, rtol=0)
    assert np.array_equal(tri.argmax(1).numpy(), io["net_input_trimap_class"])
    assert np.array_equal(cls[:, 0].numpy(), io["net_input_trimap_class"])
    r = m.predict(io["image_rgb_u8"], io["trimap_u8"])
    np.testing.assert_allclose(r.alpha, io["alpha_float"], atol=1e-5, rtol=0)
    assert np.abs(r.extras["alpha_u8"].astype(int) - io["alpha_u8"]).max() <= 1


@pytest.mark.parametrize("hw", [(64, 96), (45, 77)])
def test_other_sizes(gca, hw):
    _, _, m = gca
    img, tri = sample(*hw, seed=4)
    r = m.predict(img, tri)
    assert r.alpha.shape == hw and r.foreground is None
    check_known(r.alpha, tri)
    assert 0 < r.alpha[tri == 128].mean() < 1


def test_trimap_thresholds_are_official(gca):
    import torch

    from mattecli.backends.gca.adapter import trimap_classes

    t = np.array([[0, 84, 85, 128, 169, 170, 255]], np.uint8)
    assert trimap_classes(t).tolist() == [[0, 0, 1, 1, 1, 2, 2]]
    assert trimap_classes(torch.from_numpy(t)).tolist() == [[0, 0, 1, 1, 1, 2, 2]]


@pytest.mark.parametrize("n", [1, 5, 31, 32, 33, 70])
def test_reflect_padding_is_numpys(n):
    import torch

    from mattecli.backends.gca.adapter import pad_reflect, padded_size

    a = np.random.default_rng(n).integers(0, 256, (2, n, n + 3), dtype=np.uint8)
    got = pad_reflect(torch.from_numpy(a)[:, None], n, n + 3)[:, 0].numpy()
    if n > 1:  # np.pad itself is the official call; it cannot reflect a single row
        want = np.pad(a, ((0, 0), (32, padded_size(n) - n - 32), (32, padded_size(n + 3) - n - 3 - 32)),
                      mode="reflect")
        assert np.array_equal(got, want)
    assert got.shape[1] % 32 == 0 and got.shape[2] % 32 == 0


def test_batch_of_two_equals_two_singles(gca):
    import torch

    o, _, m = gca
    io = o.net_io()
    img, tri = torch.from_numpy(io["image"]), torch.from_numpy(io["trimap"])
    img2, tri2 = img.flip(-1), tri.flip(-1)
    with torch.inference_mode():
        both, info = m.net(torch.cat([img, img2]), torch.cat([tri, tri2]))
        one, _ = m.net(img, tri)
        two, _ = m.net(img2, tri2)
    np.testing.assert_allclose(both[0:1].numpy(), one.numpy(), atol=1e-5)
    np.testing.assert_allclose(both[1:2].numpy(), two.numpy(), atol=1e-5)
    assert info["offset_1"][0].shape[0] == 2


def test_predict_batch_equals_singles(gca):
    _, _, m = gca
    batch = batch_of([sample(40, 56, seed=1), sample(40, 56, seed=2)])
    pred = m.predict_batch(batch)
    assert pred.alpha.shape == (2, 1, 40, 56) and pred.extras["alpha_u8"].shape == (2, 1, 40, 56)
    # float32: batched convolutions may sum in another order (GCA is well conditioned: f32 vs f64 ~4e-7)
    assert batch_vs_singles(m, batch) <= 1e-5
    assert batch_vs_singles(float64_copy(m), batch) <= 1e-6  # float32 output rounding only
    r = m.predict(*sample(40, 56, seed=2))
    np.testing.assert_allclose(pred.result(1).alpha, r.alpha, rtol=0, atol=1e-5)
    assert pred.result(1).extras["alpha_u8"].shape == (40, 56)


def test_small_image(gca):
    _, _, m = gca
    img, tri = sample(20, 17, seed=8)  # smaller than the 32 px reflection: np.pad reflects repeatedly
    r = m.predict(img, tri)
    assert r.alpha.shape == (20, 17)
    check_known(r.alpha, tri)


def test_tiling(gca, monkeypatch):
    _, official, m = gca
    img, tri = sample(70, 100, seed=6)
    full = m.predict(img, tri).alpha
    monkeypatch.setitem(m.options, "tile", 512)  # = load_model("gca", ..., tile=512) without a reload
    big = m.predict(img, tri).alpha
    np.testing.assert_allclose(big, full, atol=1e-5)  # one tile covering the image = the plain pipeline
    monkeypatch.setitem(m.options, "tile", 64)
    monkeypatch.setitem(m.options, "tile_overlap", 16)
    t = m.predict(img, tri).alpha
    assert t.shape == full.shape
    check_known(t, tri)
    assert np.array_equal(m.predict(img, tri).extras["alpha_u8"], (t * 255).astype(np.uint8))


def test_bad_options_refused_at_load(gca):
    _, official, _ = gca
    with pytest.raises(UsageError, match="tile"):
        mattecli.load_model("gca", weights=official, tile=10)
    with pytest.raises(UsageError, match="tile_overlap"):
        mattecli.load_model("gca", weights=official, tile_overlap=-1)
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("gca", weights=official, tta=True)


def test_converter_round_trip(gca, tmp_path):
    import torch

    _, official, m = gca
    path = tmp_path / "gca-dist-all-data.pth"
    m.converter.write(m.converter.to_ours(official, m.spec), path, m.spec)
    obj = torch.load(path, weights_only=True)
    assert set(obj) == {"iter", "loss", "state_dict"}
    assert all(k.startswith("module.") for k in obj["state_dict"])
    m2 = mattecli.load_model("gca", weights=str(path))
    sd = m2.net.state_dict()
    for k, v in m.net.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # the gca.dist tag has the same layout; a bare state dict without prefix also loads (remove_prefix_state_dict)
    torch.save({"state_dict": dict(official)}, tmp_path / "gca-dist.pth")
    m3 = mattecli.load_model("gca.dist", weights=str(tmp_path / "gca-dist.pth"))
    assert m3.weights_set.tag == "dist"
    assert torch.equal(m3.net.state_dict()["decoder.conv2.bias"], official["decoder.conv2.bias"])


def test_converter_rejects_leftover_and_missing(gca):
    _, official, m = gca
    extra = {"module." + k: v for k, v in official.items()}
    extra["module.decoder.extra.weight"] = official["decoder.conv2.bias"]
    with pytest.raises(ConverterError, match="unexpected keys decoder.extra.weight"):
        m.converter.to_ours(extra, m.spec)
    missing = dict(official)
    missing.pop("encoder.gca.W.1.running_var")
    with pytest.raises(ConverterError, match="missing key 'encoder.gca.W.1.running_var'"):
        mattecli.load_model("gca", weights=missing)


def test_missing_weights_message(isolated_home):
    for name, fname in (("gca", "gca-dist-all-data.pth"), ("gca.dist", "gca-dist.pth")):
        with pytest.raises(WeightsUnavailable) as e:
            mattecli.load_model(name)
        msg = str(e.value)
        assert fname in msg and "drive.google.com" in msg and "non-commercial" in msg
        assert f"mattecli models import {name} " in msg
