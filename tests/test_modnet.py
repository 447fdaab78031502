"""MODNet: oracle parity (network, colab inference.py pipeline), sizes, batching, alias-aware converter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mattecli
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError, UsageError, WeightsUnavailable

pytestmark = pytest.mark.shared
TOL = 2e-4


@pytest.fixture(scope="module")
def official():
    from conftest import Oracle

    return Oracle("modnet_mobilenetv2").torch_weights()


@pytest.fixture(scope="module")
def model(official):
    return mattecli.load_model("modnet", weights=official)


def test_network(model, oracle):
    z = oracle("modnet_mobilenetv2").net_io()
    img = torch.from_numpy(z["img"])
    with torch.inference_mode():
        sem, det, matte = model.net(img, False)
        matte_inf = model.net(img, True)[2]
    np.testing.assert_allclose(sem.numpy(), z["pred_semantic"], rtol=0, atol=TOL)
    np.testing.assert_allclose(det.numpy(), z["pred_detail"], rtol=0, atol=TOL)
    np.testing.assert_allclose(matte.numpy(), z["pred_matte"], rtol=0, atol=TOL)
    assert torch.equal(matte, matte_inf)


def test_pipeline(model, oracle):
    from mattecli.backends.modnet.adapter import net_size

    p = oracle("modnet_mobilenetv2").pipeline_io()
    h, w = p["image_rgb_u8"].shape[:2]
    assert net_size(h, w) == tuple(int(x) for x in p["net_size"])
    r = model.predict(p["image_rgb_u8"])
    assert r.alpha.shape == (157, 211) and r.alpha.dtype == np.float32
    np.testing.assert_allclose(r.alpha, p["matte"], rtol=0, atol=TOL)
    u8 = (r.alpha * 255).astype("uint8").astype(int)
    assert np.abs(u8 - p["matte_u8"]).max() <= 1


def test_net_size_rule():
    from mattecli.backends.modnet.adapter import net_size

    assert net_size(1080, 1920) == (512, 896)   # short side > 512 -> scaled down, floored to 32
    assert net_size(400, 800) == (384, 800)     # straddles 512: only floored
    assert net_size(300, 200) == (768, 512)     # portrait, long side < 512: scaled up
    assert net_size(20, 600) == (32, 576)       # ours: never below 32 px
    assert net_size(1080, 1920, ref_size=1024) == (1024, 1792)


@pytest.mark.parametrize("size", [(37, 53), (64, 48)])
def test_other_sizes(size, official):
    m = mattecli.load_model("modnet", weights=official, ref_size=64)
    img = np.random.default_rng(0).integers(0, 256, size + (3,), dtype=np.uint8)
    r = m.predict(img)
    assert r.alpha.shape == size and np.isfinite(r.alpha).all()
    assert 0 <= r.alpha.min() and r.alpha.max() <= 1


def test_batch_equals_singles(model):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 96, generator=g) * 2 - 1
    with torch.inference_mode():
        both = model.net(x, True)[2]
        one = torch.cat([model.net(x[i:i + 1], True)[2] for i in range(2)])
    torch.testing.assert_close(both, one, rtol=0, atol=1e-4)
    frames = torch.rand(2, 3, 40, 56, generator=g)
    m64 = mattecli.load_model("modnet", weights=_official_from(model), ref_size=64)
    out = m64.predict_batch(Batch(frames)).alpha
    assert out.shape == (2, 1, 40, 56)
    for i in range(2):
        np.testing.assert_allclose(out[i, 0].numpy(), m64.predict(frames[i].permute(1, 2, 0).numpy()).alpha,
                                   rtol=0, atol=1e-4)


def _official_from(model):
    return model.converter.to_official(model.net.state_dict(), model.spec)


def test_ref_size_option_validated(official):
    with pytest.raises(UsageError, match="ref_size"):
        mattecli.load_model("modnet", weights=official, ref_size=8)


# -- converter ------------------------------------------------------------------------------------------------
def test_aliases_folded(official, model):
    conv, spec = model.converter, model.spec
    alias_keys = [k for k in official if k.startswith("lr_branch.backbone.")]
    assert len(alias_keys) == 312
    assert len(model.net.state_dict()) == len(official) - 312
    # either copy alone is enough
    only_alias = {k: v for k, v in official.items() if not k.startswith("backbone.")}
    only_main = {k: v for k, v in official.items() if not k.startswith("lr_branch.backbone.")}
    for sd in (only_alias, only_main):
        ours = conv.to_ours(sd, spec)
        assert torch.equal(ours["backbone.model.features.18.0.weight"],
                           official["backbone.model.features.18.0.weight"])
    # when both copies differ the official strict load ends with lr_branch.backbone (loaded last)
    diff = dict(official)
    k = "lr_branch.backbone.model.features.0.0.weight"
    diff[k] = official[k] + 1
    assert torch.equal(conv.to_ours(diff, spec)["backbone.model.features.0.0.weight"], diff[k])


def test_converter_round_trip(tmp_path, model, official):
    path = tmp_path / "modnet_photographic_portrait_matting.ckpt"
    model.converter.write(model.net.state_dict(), path, model.spec)
    sd = torch.load(path, weights_only=True)
    assert all(k.startswith("module.") for k in sd)
    assert sorted(k[len("module."):] for k in sd) == sorted(official)
    m2 = mattecli.load_model("modnet.webcam", weights=path)
    ref = model.net.state_dict()
    for k, v in m2.net.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_converter_rejects_wrong_layouts(official):
    bad = dict(official, **{"f_branch.extra.weight": torch.zeros(1)})
    with pytest.raises(ConverterError, match="unexpected keys f_branch.extra.weight"):
        mattecli.load_model("modnet", weights=bad)
    missing = dict(official)
    missing.pop("f_branch.conv_f.1.layers.0.bias")
    with pytest.raises(ConverterError, match="missing key"):
        mattecli.load_model("modnet", weights=missing)


def test_missing_weights_message(isolated_home):
    with pytest.raises(WeightsUnavailable) as ei:
        mattecli.load_model("modnet")
    msg = str(ei.value)
    assert "modnet_photographic_portrait_matting.ckpt" in msg and "Apache-2.0" in msg
    assert "1umYmlCulvIFNaqPjwod1SayFmSRHziyR" in msg and "mattecli models import modnet" in msg
    with pytest.raises(WeightsUnavailable, match="modnet_webcam_portrait_matting.ckpt"):
        mattecli.load_model("modnet.webcam")


def test_cli_matte_trimap_free(tmp_path, model):
    from PIL import Image
    from typer.testing import CliRunner

    from mattecli.cli.app import app

    ck = tmp_path / "modnet_photographic_portrait_matting.ckpt"
    model.converter.write(model.net.state_dict(), ck, model.spec)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    res = CliRunner().invoke(app, ["matte", str(tmp_path / "a.png"), "--model", "modnet", "--weights", str(ck),
                                   "-o", str(tmp_path / "out"), "--device", "cpu", "--option", "ref_size=64"])
    assert res.exit_code == 0, res.output
    files = list((tmp_path / "out").rglob("*.png"))
    assert len(files) == 1 and np.asarray(Image.open(files[0])).shape == (45, 61)


def test_bf16_not_offered(official):
    with pytest.raises(UsageError, match="bf16"):
        mattecli.load_model("modnet", weights=official, precision="bf16")
