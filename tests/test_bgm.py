"""Background Matting v1: oracle parity (generator, image-mode pipeline), segmenter path, converter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mattecli
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError, InputError, MissingInput, UsageError, WeightsUnavailable

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def official():
    from conftest import Oracle

    return Oracle("bgmv1_netg").torch_weights()


@pytest.fixture(scope="module")
def model(official):
    return mattecli.load_model("bgm", weights=official)


@pytest.fixture(scope="module")
def model64(official):
    """The same model computing in float64: the yardstick for float32 rounding noise."""
    m = mattecli.load_model("bgm", weights=official)
    m.net.double()
    m.dtype = torch.float64
    return m


def assert_within_float_noise(ours32, ours64, ref, floor, what):
    """mean|ours32 - ref| <= 1.5 mean|ours64 - ours32| + floor (conftest: the float-noise yardstick)."""
    from conftest import assert_within_float_noise as check

    check(ours32, ours64, ref, floor=floor, what=what)


def test_network(model, model64, oracle):
    z = oracle("bgmv1_netg").net_io()
    args = [torch.from_numpy(z[k]) for k in ("image", "back", "seg", "multi")]
    with torch.inference_mode():
        alpha, fg = model.net(*args)
        alpha64, fg64 = model64.net(*(a.double() for a in args))
        # the official forward never uses the motion branch: other motion frames give the same result
        alpha2, fg2 = model.net(*args[:3], torch.zeros_like(args[3]))
    # bit-exact on the oracle's own machine with 2 threads; elsewhere the convolutions sum in another order
    assert_within_float_noise(alpha, alpha64, z["alpha"], 1e-7, "alpha")
    assert_within_float_noise(fg, fg64, z["fg"], 1e-7, "fg")
    assert torch.equal(alpha, alpha2) and torch.equal(fg, fg2)


def test_network_batch_of_two(model64):
    """Batch of 2 == 2 x batch 1, in float64 (float32 may group the sums of a batch otherwise)."""
    g = torch.Generator().manual_seed(0)
    x = [torch.rand(2, c, 32, 48, generator=g, dtype=torch.float64) * 2 - 1 for c in (3, 3, 1, 4)]
    with torch.inference_mode():
        both = model64.net(*x)
        one = [model64.net(*(t[i:i + 1] for t in x)) for i in range(2)]
    for k in range(2):
        torch.testing.assert_close(both[k], torch.cat([one[0][k], one[1][k]]), rtol=0, atol=1e-10)


def test_preprocessing_exact(oracle):
    from mattecli.backends.bgm.preprocess import crop_resize, get_bbox, process_mask

    p = oracle("bgmv1_netg").pipeline_io()
    bbox = get_bbox(p["mask_u8"])
    np.testing.assert_array_equal(bbox, p["bbox"])
    np.testing.assert_array_equal(process_mask(crop_resize(p["mask_u8"], bbox)), p["net_seg_u8"])


def _predict(model, img, bg=None, **kw):
    """One image through predict_batch with the extra inputs (segmentation=, motion_frames=)."""
    return model.predict_batch(Batch.from_numpy(img, None, bg), **kw).result(0)


@pytest.mark.slow
def test_pipeline_image_mode(model, model64, oracle):
    """The host steps exactly; the uint8 outputs within float32 noise. uint8 truncation and the thresholds
    (alpha > 0.05 component, alpha > 0.95 foreground) turn rounding noise into level flips, rarely but by any
    amount (one pixel sitting on the 0.05 threshold flips by 12 levels with 2 threads here), so the outputs are
    judged on average against our own float64 run, with a floor of a few one-level flips per million values."""
    p = oracle("bgmv1_netg").pipeline_io()
    import functools

    r = _predict(model, p["image_rgb_u8"], p["back_rgb_u8"], segmentation=p["mask_u8"])
    # the float64 run (a 512x512 crop: the costliest step of the file) only when an output is not exact already
    r64 = functools.cache(lambda: _predict(model64, p["image_rgb_u8"], p["back_rgb_u8"], segmentation=p["mask_u8"]))
    assert r.alpha.shape == (157, 211) and r.foreground.shape == (157, 211, 3)
    np.testing.assert_array_equal(r.extras["bbox"], p["bbox"])
    np.testing.assert_array_equal(r.extras["net_seg_u8"], p["net_seg_u8"])
    crop = "alpha_crop_u8"
    for what, got, got64, ref in (
            ("alpha crop", r.extras[crop] / 255, lambda: r64().extras[crop] / 255, p[crop] / 255),
            ("alpha", r.alpha, lambda: r64().alpha, p["alpha_u8"] / 255),
            ("foreground", r.foreground, lambda: r64().foreground, p["fg_rgb_u8"] / 255)):
        assert_within_float_noise(got, got64, ref, 1e-6, what)


def _small_reso(model, monkeypatch):
    """Run the pipeline at 128x128 instead of 512x512 (keeps these tests fast; the logic is the same)."""
    monkeypatch.setattr(model, "reso", 128)


def test_segmenter_used_when_no_mask(model, monkeypatch, oracle):
    from conftest import Oracle

    _small_reso(model, monkeypatch)
    w = Oracle("bisenetv2_coco").torch_weights()
    p = oracle("bgmv1_netg").pipeline_io()
    img = p["image_rgb_u8"]
    # synthetic weights rarely predict "person": use the class they predict most, via the segmenter's option
    labels = mattecli.load_model("bisenetv2.cocostuff", weights=w).predict(img).extras["labels"]
    top = int(np.bincount(labels.ravel()).argmax())
    seg = mattecli.load_model("bisenetv2.cocostuff", weights=w, classes=(top,))
    monkeypatch.setattr(model, "_segmenter", seg)
    expected = (labels == top).astype(np.uint8) * 255
    r = model.predict(img, background=p["back_rgb_u8"])
    np.testing.assert_array_equal(r.extras["segmentation"], expected)
    assert r.alpha.shape == img.shape[:2]


def test_segmenter_unavailable_message(official, isolated_home):
    m = mattecli.load_model("bgm", weights=official)
    img = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(WeightsUnavailable, match=r"segmentation=.*|bisenetv2") as ei:
        m.predict(img, background=img)
    msg = str(ei.value)
    assert "bisenetv2.cocostuff" in msg and "segmentation=" in msg and "model_final_v2_coco.pth" in msg
    m2 = mattecli.load_model("bgm", weights=official, segmenter=None)
    with pytest.raises(MissingInput, match="segmentation="):
        m2.predict(img, background=img)


def test_bad_segmenter_option_refused_at_load(official):
    with pytest.raises(UsageError, match="unicorn"):
        mattecli.load_model("bgm", weights=official, segmenter="unicorn")
    with pytest.raises(UsageError, match="needs background"):
        mattecli.load_model("bgm", weights=official, segmenter="bgmv2")
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("bgm", weights=official, segmentation="mask.png")


def test_float_mask_motion_frames_and_empty(model, monkeypatch):
    _small_reso(model, monkeypatch)
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), np.float32)
    mask[10:50, 20:60] = 1.0
    r = _predict(model, img, bg, segmentation=mask)
    r2 = _predict(model, img, bg, segmentation=(mask * 255).astype(np.uint8), motion_frames=[img, bg, img, bg])
    np.testing.assert_array_equal(r.alpha, r2.alpha)  # motion frames never reach the output (official forward)
    assert r.alpha.shape == (60, 80) and not r.extras["empty"]
    with pytest.warns(UserWarning, match="empty"):
        e = _predict(model, img, bg, segmentation=np.zeros((60, 80), np.uint8))
    assert e.alpha.max() == 0 and e.extras["empty"]
    with pytest.raises(InputError, match="motion_frames"):
        _predict(model, img, bg, segmentation=mask, motion_frames=[img])
    with pytest.raises(MissingInput, match="--bg"):
        _predict(model, img, segmentation=mask)


def test_predict_batch_equals_single_predicts(model64, monkeypatch):
    """A batch of 2 equal-size images (one plate for both, one mask each) == 2 single calls. In float64: the
    outputs are uint8 levels and thresholds, which float32 rounding of the batched convolutions could flip."""
    model = model64
    _small_reso(model, monkeypatch)
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    masks = np.zeros((2, 48, 64), np.uint8)
    masks[0, 8:40, 10:50] = 255
    masks[1, 4:30, 30:60] = 255
    batch = Batch(torch.from_numpy(imgs).permute(0, 3, 1, 2), background=torch.from_numpy(bg).permute(2, 0, 1)[None])
    out = model.predict_batch(batch, segmentation=torch.from_numpy(masks))
    assert out.alpha.shape == (2, 1, 48, 64) and out.foreground.shape == (2, 3, 48, 64)
    for i in range(2):
        one = _predict(model, imgs[i], bg, segmentation=masks[i])
        got = out.result(i)
        np.testing.assert_array_equal(got.alpha, one.alpha)
        np.testing.assert_array_equal(got.foreground, one.foreground)
        np.testing.assert_array_equal(got.extras["bbox"], one.extras["bbox"])
        assert got.alpha.max() > 0


def test_converter_round_trip(tmp_path, model, official):
    path = tmp_path / "netG_epoch_12.pth"
    model.converter.write(model.net.state_dict(), path, model.spec)
    sd = torch.load(path, weights_only=True)
    assert list(sd) == ["module." + k for k in official]
    m2 = mattecli.load_model("bgm.real-hand-held", weights=path)
    for k, v in m2.net.state_dict().items():
        assert torch.equal(v, official[k]), k
    bad = dict(official, **{"model_enc_extra.0.weight": torch.zeros(1)})
    with pytest.raises(ConverterError, match="unexpected keys model_enc_extra.0.weight"):
        mattecli.load_model("bgm", weights=bad)
    missing = dict(official)
    missing.pop("model_enc_multi.1.weight")  # unused by forward, still required (strict, as officially)
    with pytest.raises(ConverterError, match="missing key 'model_enc_multi.1.weight'"):
        mattecli.load_model("bgm", weights=missing)


def test_missing_weights_message(isolated_home):
    with pytest.raises(WeightsUnavailable) as ei:
        mattecli.load_model("bgm.syn-comp-adobe")
    msg = str(ei.value)
    assert "CC BY-NC-SA 4.0" in msg and "1WLDBC_Q-cA72QC8bB-Rdj53UB2vSPnXv" in msg
    assert "mattecli models import bgm.syn-comp-adobe" in msg
    with pytest.raises(WeightsUnavailable, match="netG_epoch_12.pth"):
        mattecli.load_model("bgm")
