"""BiSeNetV2 segmenters against the oracles of the official CoinCheung/BiSeNet code."""
from __future__ import annotations

import numpy as np
import pytest

import mattecli
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError, UsageError, WeightsUnavailable

CASES = [("bisenetv2.cityscapes", "bisenetv2_city"), ("bisenetv2.cocostuff", "bisenetv2_coco")]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request):
    from conftest import Oracle

    name, folder = request.param
    o = Oracle(folder)
    return name, o, o.torch_weights()


def test_network_matches_oracle(case):
    import torch

    name, o, sd = case
    m = mattecli.load_model(name, weights=sd)
    io = o.net_io()
    with torch.inference_mode():
        lo = m.net.forward_lowres(torch.from_numpy(io["input"]))
        full = m.net(torch.from_numpy(io["input"]))
    np.testing.assert_allclose(lo.numpy(), io["logits_lowres"], atol=1e-5)
    np.testing.assert_allclose(full.max(1).values.numpy(), io["logits_max"], atol=1e-5)
    assert (full.argmax(1).numpy() == io["pred"]).mean() > 0.999


def test_pipeline_matches_oracle(case):
    """tools/demo.py stage by stage: the resized, normalised input; from that input the logits (low resolution and
    resized back) and the labels; end to end the labels; the dataset statistics end to end."""
    import torch

    name, o, sd = case
    m = mattecli.load_model(name, weights=sd)
    io = o.pipeline_io()
    batch = Batch.from_numpy(io["image_rgb_u8"])
    # the input: the bilinear resize's weights are float32 fractions of source coordinates up to max(H, W); CPU
    # kernels round them differently (scalar vs vector code), by up to an ulp of the coordinate each, which moves
    # an output by at most that times the largest step between neighbours: 2 ulp(max(H,W)) x the value range.
    (x,), size = m.encode(batch)
    ref_in = io["net_input"]
    assert tuple(x.shape) == ref_in.shape
    bound = 2 * float(np.spacing(np.float32(max(ref_in.shape[-2:])))) * float(ref_in.max() - ref_in.min())
    np.testing.assert_allclose(x.numpy(), ref_in, rtol=0, atol=bound)
    # from the oracle's own input: the network and the demo's post-processing
    with torch.inference_mode():
        lo = m.forward((torch.from_numpy(ref_in),))
        logits = m.upsample(lo, size)
    np.testing.assert_allclose(lo.numpy(), io["logits_lowres"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits[0].max(0).values.numpy(), io["logits_max"], atol=1e-5, rtol=0)
    assert (logits[0].argmax(0).numpy() == io["pred_u8"]).mean() > 0.999
    # end to end
    r = m.predict(io["image_rgb_u8"])
    assert (r.extras["labels"] == io["pred_u8"]).mean() > 0.999
    assert r.alpha.shape == io["pred_u8"].shape and r.alpha.dtype == np.float32
    assert r.extras["labels"].shape == io["pred_u8"].shape
    assert r.extras["class_names"][r.extras["class_ids"][0]] == "person"
    np.testing.assert_array_equal(r.extras["probability"], r.alpha)
    if "pred_u8_cocostats" in io.files:
        # no stored input for these statistics: end to end, as close to its oracle as the demo statistics' path
        # (checked stage by stage above) is to its own on this CPU
        demo_err = np.abs(m.logits(batch)[0][0].max(0).values.numpy() - io["logits_max"]).mean()
        m2 = mattecli.load_model(name, weights=sd, normalization="dataset")
        logits2, _ = m2.logits(batch)
        err = np.abs(logits2[0].max(0).values.numpy() - io["logits_max_cocostats"]).mean()
        assert err <= 1.5 * demo_err + 1e-7, (err, demo_err)
        assert (m2.predict(io["image_rgb_u8"]).extras["labels"] == io["pred_u8_cocostats"]).mean() > 0.999


@pytest.mark.parametrize("hw", [(64, 64), (45, 77)])
def test_other_sizes_and_classes(case, hw):
    name, o, sd = case
    m = mattecli.load_model(name, weights=sd, classes=["person", "car"])
    img = np.random.default_rng(3).integers(0, 256, (*hw, 3), dtype=np.uint8)
    r = m.predict(img)
    assert r.alpha.shape == hw and r.extras["labels"].shape == hw
    assert 0 <= r.alpha.min() and r.alpha.max() <= 1


def test_batch_two_equals_two_singles(case):
    """The network on a batch of 2 == twice on batch 1, in float64 (float32 may group the sums otherwise)."""
    import torch

    name, o, sd = case
    m = mattecli.load_model(name, weights=sd)
    net = m.net.double()
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((2, 3, 64, 96)))
    with torch.inference_mode():
        both = net.forward_lowres(x)
        one = torch.cat([net.forward_lowres(x[i:i + 1]) for i in range(2)])
    np.testing.assert_allclose(both.numpy(), one.numpy(), atol=1e-10, rtol=0)


def test_predict_batch_equals_single_predicts(case):
    """predict_batch on 2 equal-size images == 2 x predict, run in float64 (the labels are argmaxes: float32
    rounding could flip a near-tie) then compared exactly on labels and to 1e-10 on the probabilities."""
    import torch

    name, o, sd = case
    m = mattecli.load_model(name, weights=sd, classes=["person", "1"])
    m.net.double()
    m.dtype = torch.float64
    imgs = np.random.default_rng(6).integers(0, 256, (2, 45, 77, 3), dtype=np.uint8)
    out = m.predict_batch(Batch(torch.from_numpy(imgs).permute(0, 3, 1, 2)))
    assert out.alpha.shape == (2, 1, 45, 77) and out.extras["labels"].shape == (2, 45, 77)
    for i in range(2):
        one, got = m.predict(imgs[i]), out.result(i)
        np.testing.assert_array_equal(got.extras["labels"], one.extras["labels"])
        np.testing.assert_allclose(got.alpha, one.alpha, atol=1e-10, rtol=0)
        assert got.extras["class_ids"][1] == 1 and len(got.extras["class_names"]) == len(m.entry.classes)


def test_converter_round_trip_and_leftovers(case, tmp_path):
    import torch

    name, o, sd = case
    m = mattecli.load_model(name, weights=sd)
    ours = m.net.state_dict()
    path = tmp_path / "bisenet.pth"
    m.converter.write(ours, path, m.spec)
    m2 = mattecli.load_model(name, weights=str(path))
    for k, v in m2.net.state_dict().items():
        assert torch.equal(v, ours[k]), k
    # the full training-mode file (with auxiliary heads) loads too, with every key consumed
    full = tmp_path / "train_mode.pth"
    torch.save(sd, full)
    mattecli.load_model(name, weights=str(full))
    bad = dict(sd)
    bad["head.extra.weight"] = torch.zeros(1)
    with pytest.raises(ConverterError, match="unexpected keys"):
        mattecli.load_model(name, weights=bad)
    missing = {k: v for k, v in sd.items() if not k.startswith("bga.conv")}
    with pytest.raises(ConverterError, match="missing key"):
        mattecli.load_model(name, weights=missing)


def test_bad_options_are_usage_errors_at_load(case):
    name, o, sd = case
    with pytest.raises(UsageError, match="unknown class"):
        mattecli.load_model(name, weights=sd, classes=["unicorn"])
    with pytest.raises(UsageError, match="unknown class"):   # before the weights are looked at
        mattecli.load_model(name, weights="/nonexistent/model.pth", classes=["unicorn"])
    with pytest.raises(UsageError, match="out of range"):
        mattecli.load_model(name, weights=sd, classes=["999"])
    with pytest.raises(UsageError, match="normalization"):
        mattecli.load_model(name, weights=sd, normalization="imagenet")


def test_missing_weights_message(isolated_home):
    with pytest.raises(WeightsUnavailable) as e:
        mattecli.load_model("bisenetv2.cocostuff")
    msg = str(e.value)
    assert "model_final_v2_coco.pth" in msg and "mattecli models import" in msg and "MIT" in msg
    assert "\n" not in msg


def test_cli_trimap_with_segmenter(tmp_path):
    """`mattecli trimap IMG --segmenter bisenetv2.cocostuff --classes person --weights FILE` end to end: the class map
    becomes a mask, the mask a 0/128/255 trimap of the image's size."""
    import torch
    from typer.testing import CliRunner

    from conftest import Oracle
    from mattecli.cli.app import app
    from mattecli.imaging.io import read_image

    weights = tmp_path / "model_final_v2_coco.pth"
    torch.save(Oracle("bisenetv2_coco").torch_weights(), weights)
    img = tmp_path / "photo.png"
    import cv2

    rng = np.random.default_rng(0)
    cv2.imwrite(str(img), rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    out = tmp_path / "tri"
    r = CliRunner().invoke(app, ["trimap", str(img), "--segmenter", "bisenetv2.cocostuff", "--classes", "person,car",
                                 "--weights", str(weights), "--band", "3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    tri = read_image(out / "photo_trimap.png")
    tri = np.asarray(tri)
    assert tri.shape[:2] == (70, 90)
    assert set(np.unique(tri)) <= {0, 128, 255}
    r = CliRunner().invoke(app, ["trimap", str(img), "--segmenter", "bisenetv2.cocostuff", "--classes", "unicorn",
                                 "--weights", str(weights), "-o", str(tmp_path / "t2")])
    assert r.exit_code == 2 and "unicorn" in r.output
