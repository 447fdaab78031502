"""FBA Matting against the oracle of the authors' code (MarcoForte/FBA_Matting@8dd100d), converter, TTA, errors."""
from __future__ import annotations

import platform

import numpy as np
import pytest

import mattecli
from mattecli.errors import ConverterError, UsageError, WeightsUnavailable
from trimap_model_helpers import (assert_within_float_noise, batch_of, batch_vs_singles, check_known, float64_copy,
                                  memoise_distance_channels, sample)

FOLDER = "fba_resnet50-gn-ws"


@pytest.fixture(scope="module")
def fba():
    from conftest import Oracle

    o = Oracle(FOLDER)
    official = o.torch_weights()
    return o, official, mattecli.load_model("fba", weights=official)


def _net_inputs(io):
    import torch

    return [torch.from_numpy(io[k]) for k in ("image", "two_chan_trimap", "image_n", "trimap_transformed")]


def test_network_matches_oracle(fba):
    import torch

    o, _, m = fba
    io = o.net_io()
    x = _net_inputs(io)
    with torch.inference_mode():
        out, raw = m.net(*x, return_raw=True)
        out64, raw64 = float64_copy(m).net(*[t.double() for t in x], return_raw=True)
    # this synthetic GN+WS ResNet amplifies float32 rounding (README: a thread count alone moves the output by
    # ~4e-4): judge the distance to the oracle against the float32 noise of the same network
    assert_within_float_noise(raw.numpy(), raw64.numpy(), io["decoder_conv_up4_raw"], what="conv_up4 raw")
    assert_within_float_noise(out.numpy(), out64.numpy(), io["output"], what="output")
    # and the README's acceptance bounds
    np.testing.assert_allclose(raw.numpy(), io["decoder_conv_up4_raw"], atol=2e-3, rtol=0)
    np.testing.assert_allclose(out.numpy(), io["output"], atol=5e-3, rtol=0)


def test_weight_standardisation_applied_once_at_load(fba):
    """eval() after loading replaces WS conv weights by their standardised version (once); conv_up4 is plain."""
    import torch

    _, official, m = fba
    sd = m.net.state_dict()
    w = official["encoder.layer2.0.conv2.weight"].double()
    flat = w.view(w.shape[0], -1)
    ref = (flat - flat.mean(1, keepdim=True)) / torch.sqrt(flat.var(1, unbiased=False, keepdim=True) + 1e-5)
    np.testing.assert_allclose(sd["encoder.layer2.0.conv2.weight"].double().view_as(ref).numpy(), ref.numpy(),
                               atol=1e-5)
    assert torch.equal(sd["decoder.conv_up4.0.weight"], official["decoder.conv_up4.0.weight"])


def test_pipeline_matches_oracle(fba):
    o, _, m = fba
    io = o.pipeline_io()
    r = m.predict(io["image_rgb_u8"], io["trimap_u8"])
    assert r.alpha.shape == io["alpha"].shape
    np.testing.assert_allclose(r.alpha, io["alpha"], atol=1e-3, rtol=0)
    # F = image where alpha == 1 and B = image where alpha == 0 exactly (the official rule): a discrete branch, so
    # where float noise puts one side's clamped alpha at exactly 0 and the other's at 1e-6 (measured with
    # ATEN_CPU_CAPABILITY=default: 4 pixels), the colours come from different formulas. Compare the colours where
    # both took the same branch; the branch may differ only at a few pixels whose alphas already agree (above).
    for colour, ref, edge in ((r.foreground, io["fg"], 1.0), (r.background, io["bg"], 0.0)):
        same = (r.alpha == edge) == (io["alpha"] == edge)
        assert (~same).mean() < 1e-3
        np.testing.assert_allclose(colour[same], ref[same], atol=1e-3, rtol=0)


def test_trimap_transform_with_uint8_wraparound(fba):
    import cv2

    from mattecli.backends.fba.trimap_channels import trimap_transform, two_channel_trimap

    o, _, _ = fba
    io = o.pipeline_io()
    h, w = io["trimap_u8"].shape
    t = cv2.resize(two_channel_trimap(io["trimap_u8"]), (-(-w // 8) * 8, -(-h // 8) * 8),
                   interpolation=cv2.INTER_LANCZOS4)
    ref = io["net_input_trimap_transformed_f16"].astype(np.float32)
    np.testing.assert_allclose(trimap_transform(t), ref, atol=1e-3, rtol=0)
    # binarising first (what a "clean" re-implementation would do) does NOT reproduce the official tensor
    assert np.abs(trimap_transform(np.round(np.clip(t, 0, 1))) - ref).max() > 1e-2


def test_resize_skipped_at_multiples_of_8():
    """The pipeline skips both cv2 resizes when the size is already a multiple of 8: cv2 returns a copy then."""
    import cv2

    rng = np.random.default_rng(1)
    a = rng.uniform(-0.3, 1.3, (40, 48, 3))
    assert np.array_equal(cv2.resize(a, (48, 40), interpolation=cv2.INTER_LANCZOS4), a)
    out = rng.uniform(0, 1, (40, 48, 7)).astype(np.float32)
    assert np.array_equal(cv2.resize(out, (48, 40), interpolation=cv2.INTER_LINEAR), out)


def test_uint8_wrap_matches_numpy_on_x86():
    from mattecli.backends.fba.trimap_channels import float_to_uint8_wrap

    x = np.array([-0.5, -0.9, -1.2, -255.5, -256.2, 0.0, 12.7, 255.9, 256.5, 300.0, 511.9, 512.0])
    got = float_to_uint8_wrap(x)
    assert got.tolist() == [0, 0, 255, 1, 0, 0, 12, 255, 0, 44, 255, 0]
    if platform.machine().lower() in ("x86_64", "amd64"):
        with np.errstate(invalid="ignore"):
            assert got.tolist() == x.astype(np.uint8).tolist()


@pytest.mark.parametrize("hw", [(64, 80), (45, 77)])
def test_other_sizes(fba, hw):
    _, _, m = fba
    img, tri = sample(*hw, seed=11)
    r = m.predict(img, tri)
    assert r.alpha.shape == hw and r.foreground.shape == hw + (3,) and r.background.shape == hw + (3,)
    check_known(r.alpha, tri)
    fg1 = r.alpha == 1
    np.testing.assert_allclose(r.foreground[fg1], img[fg1] / 255.0, atol=1e-6)
    bg0 = r.alpha == 0
    np.testing.assert_allclose(r.background[bg0], img[bg0] / 255.0, atol=1e-6)


def test_float_inputs_equal_uint8(fba):
    _, _, m = fba
    img, tri = sample(40, 48, seed=5)
    a = m.predict(img, tri)
    b = m.predict(img.astype(np.float32) / 255.0, (tri / 255.0).astype(np.float32))
    np.testing.assert_allclose(a.alpha, b.alpha, atol=1e-3)  # float32 vs float64 scaling of the input


def test_batch_of_two_equals_two_singles(fba):
    import torch

    o, _, m = fba
    io = o.net_io()
    x = [t[..., :48, :64] for t in _net_inputs(io)]
    x2 = [torch.cat([t, t.flip(-1)]) for t in x]
    with torch.inference_mode():
        both = m.net(*x2)
        one = m.net(*x)
        other = m.net(*[t.flip(-1) for t in x])
    # this synthetic GN+WS ResNet amplifies float32 summation-order changes (README: ~4e-4 from threads alone)
    np.testing.assert_allclose(both[0:1].numpy(), one.numpy(), atol=2e-3)
    np.testing.assert_allclose(both[1:2].numpy(), other.numpy(), atol=2e-3)


def test_predict_batch_equals_singles(fba, monkeypatch):
    import mattecli.backends.fba.adapter as adapter

    _, _, m = fba
    memoise_distance_channels(monkeypatch, adapter)
    batch = batch_of([sample(36, 52, seed=1), sample(36, 52, seed=2)])  # 36x52: resized to 40x56 and back
    pred = m.predict_batch(batch)
    assert pred.alpha.shape == (2, 1, 36, 52) and pred.foreground.shape == (2, 3, 36, 52)
    # float64: only the float32 rounding of the network output is left
    m64 = float64_copy(m)
    assert batch_vs_singles(m64, batch) <= 1e-6
    # float32: batched convolutions sum in another order, which this synthetic GN+WS ResNet amplifies; the
    # difference must be of the size of float32 rounding through the same network (measured against float64)
    for i in range(2):
        one = batch.slice(i, i + 1)
        single, single64 = m.predict_batch(one), m64.predict_batch(one)
        for k in ("alpha", "foreground", "background"):
            assert_within_float_noise(getattr(single, k), getattr(single64, k), getattr(pred, k)[i:i + 1],
                                      what=f"item {i} {k}")
    check_known(pred.result(1).alpha, batch.trimap[1, 0].numpy())


def test_tta_is_equivariant_and_keeps_known_regions(fba, monkeypatch):
    _, _, m = fba
    img, tri = sample(24, 40, seed=9)
    plain = m.predict(img, tri)
    monkeypatch.setitem(m.options, "tta", True)  # same as load_model("fba", ..., tta=True), without a reload
    r = m.predict(img, tri)
    check_known(r.alpha, tri)
    assert r.foreground.shape == (24, 40, 3) and r.extras["tta"] is True
    assert np.abs(plain.alpha - r.alpha).max() > 0  # it is not the single pass
    # the 8-view average is invariant under the dihedral group: a flipped input gives the flipped output. In
    # float64, so that the synthetic network's amplified float32 rounding (each view sums in its own order) does
    # not count; what is left is OpenCV's one-ulp distance-transform jitter (~1e-6 at the output)
    m64 = float64_copy(m)
    r = m64.predict(img, tri)
    rf = m64.predict(np.ascontiguousarray(img[:, ::-1]), np.ascontiguousarray(tri[:, ::-1]))
    np.testing.assert_allclose(rf.alpha[:, ::-1], r.alpha, atol=1e-4)
    np.testing.assert_allclose(rf.foreground[:, ::-1], r.foreground, atol=1e-4)


def test_tta_views_of_a_batch(fba, monkeypatch):
    import mattecli.backends.fba.adapter as adapter

    _, _, m = fba
    memoise_distance_channels(monkeypatch, adapter)
    batch = batch_of([sample(24, 32, seed=3), sample(24, 32, seed=4)])
    m64 = float64_copy(m)
    for mode in ("flip", "d4"):
        monkeypatch.setitem(m.options, "tta", mode)
        monkeypatch.setitem(m64.options, "tta", mode)
        pred = m.predict_batch(batch)
        assert pred.alpha.shape == (2, 1, 24, 32) and pred.extras["tta"] == mode
        for i in range(2):
            check_known(pred.result(i).alpha, batch.trimap[i, 0].numpy())
        assert batch_vs_singles(m64, batch) <= 1e-6   # float64: only the float32 rounding of the output is left


def test_bad_options_refused_at_load(fba):
    _, official, _ = fba
    for bad in ({"tta": "rot"}, {"tta": 2}, {"tile": 10}, {"tile_overlap": -5}):
        with pytest.raises(UsageError, match=next(iter(bad))):
            mattecli.load_model("fba", weights=official, **bad)


def test_converter_round_trip(fba, tmp_path):
    import torch

    _, official, m = fba
    conv = m.converter
    path = tmp_path / "FBA.pth"
    conv.write(conv.to_ours(official, m.spec), path, m.spec)
    obj = torch.load(path, weights_only=True)
    assert set(obj) == set(official)  # plain state dict, official names, no prefix
    m2 = mattecli.load_model("fba", weights=str(path))
    sd = m2.net.state_dict()
    for k, v in m.net.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # a DataParallel re-save ('module.' prefix) is accepted
    torch.save({"module." + k: v for k, v in official.items()}, tmp_path / "dp.pth")
    m3 = mattecli.load_model("fba", weights=str(tmp_path / "dp.pth"))
    assert torch.equal(m3.net.state_dict()["decoder.conv_up4.4.bias"], official["decoder.conv_up4.4.bias"])


def test_converter_rejects_leftover_and_missing(fba):
    _, official, m = fba
    extra = dict(official)
    extra["encoder.fc.weight"] = official["decoder.conv_up4.4.bias"]
    with pytest.raises(ConverterError, match="unexpected keys encoder.fc.weight"):
        m.converter.to_ours(extra, m.spec)
    missing = dict(official)
    missing.pop("decoder.ppm.0.1.weight")
    with pytest.raises(ConverterError, match="missing key 'decoder.ppm.0.1.weight'"):
        mattecli.load_model("fba", weights=missing)


def test_missing_weights_message(isolated_home):
    with pytest.raises(WeightsUnavailable) as e:
        mattecli.load_model("fba")
    msg = str(e.value)
    assert "FBA.pth" in msg and "drive.google.com" in msg and "non-commercial" in msg
    assert "mattecli models import fba" in msg
    assert "\n" not in msg


def test_cli_matte_writes_alpha_and_model_foreground(fba, tmp_path):
    from foundation_helpers import invoke
    from mattecli.imaging.io import read_image, write_image

    _, official, m = fba
    wpath = tmp_path / "FBA.pth"
    m.converter.write(m.converter.to_ours(official, m.spec), wpath, m.spec)
    img, tri = sample(40, 48, seed=21)
    write_image(tmp_path / "img.png", img)
    write_image(tmp_path / "t.png", tri)
    out = tmp_path / "out"
    r = invoke("matte", tmp_path / "img.png", "--trimap", tmp_path / "t.png", "--model", "fba", "--weights", wpath,
               "--device", "cpu", "--precision", "fp32", "-o", out, "-T", "alpha,rgba")
    assert r.exit_code == 0, r.stderr
    want = m.predict(img, tri)
    alpha = read_image(out / "img_alpha.png")
    assert np.abs(alpha.astype(int) - (want.alpha * 255 + 0.5).astype(int)).max() <= 1
    rgba = read_image(out / "img_rgba.png")
    sel = want.alpha > 0.5  # the RGBA colours are FBA's own foreground, not an estimate made afterwards
    assert np.abs(rgba[..., :3][sel].astype(int) - (want.foreground[sel] * 255 + 0.5).astype(int)).max() <= 1


def test_tiling(fba, monkeypatch):
    _, official, m = fba
    img, tri = sample(60, 90, seed=13)
    full = m.predict(img, tri)
    monkeypatch.setitem(m.options, "tile", 256)
    one = m.predict(img, tri)
    np.testing.assert_allclose(one.alpha, full.alpha, atol=1e-3)  # one tile = the plain pipeline (run-to-run ~1e-4)
    monkeypatch.setitem(m.options, "tile", 64)
    monkeypatch.setitem(m.options, "tile_overlap", 16)
    t = m.predict(img, tri)
    assert t.alpha.shape == full.alpha.shape and t.foreground.shape == full.foreground.shape
    check_known(t.alpha, tri)
    with pytest.raises(UsageError, match=r"tile=10: out of range; valid: an integer >= 64"):
        mattecli.load_model("fba", weights=official, tile=10)
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("fba", weights=official, tiles=512)
