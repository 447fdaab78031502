"""BGMv2: oracle parity (network: full / thresholding / sampling; pipeline), sizes, batching, converter, alignment."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import mattecli
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError, InputError, MissingInput, UsageError, WeightsUnavailable

# float32 distance to the oracle: a fixed bound where the synthetic network is tame (measured 10x below it with
# every CPU code path); the synthetic ResNet-101 amplifies rounding (the oracle's own README: ~1.5e-4 between thread
# counts), so it is judged against float32 noise measured in the test (see assert_within_float_noise).
TOL = {"mobilenetv2": 1e-5, "resnet50": 2e-5, "resnet101": None}
OUTS = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")


def assert_within_float_noise(ours32, ours64, ref, floor=1e-7, what=""):
    """mean|ours32 - ref| <= 2 mean|ours64 - ours32| + floor (conftest: the float-noise yardstick)."""
    from conftest import assert_within_float_noise as check

    check(ours32, ours64, ref, floor=floor, what=what)


def _close(tag, got, got64, ref, what):
    if TOL[tag] is None:
        assert_within_float_noise(got, got64(), ref, what=what)
    else:
        np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=TOL[tag], err_msg=what)


def _float64(m):
    """The same model computing in float64 (noise yardstick; identities without float32 rounding)."""
    m.net.double()
    m.dtype = torch.float64
    return m

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def weights():
    from conftest import Oracle

    cache = {}

    def get(tag):
        if tag not in cache:
            cache[tag] = Oracle(f"bgmv2_{tag}").torch_weights()
        return cache[tag]

    return get


@pytest.fixture(scope="module")
def models(weights):
    cache = {}

    def get(tag):
        if tag not in cache:
            cache[tag] = mattecli.load_model(f"bgmv2.{tag}", weights=weights(tag), refine_mode="full")
        return cache[tag]

    return get


def _set_mode(m, mode, threshold=0.1, sample_pixels=80_000):
    m.net.refiner.mode = mode
    m.net.refiner.threshold = float(threshold)
    m.net.refiner.sample_pixels = int(sample_pixels)


@pytest.mark.parametrize("tag", ["mobilenetv2", "resnet50", "resnet101"])
def test_network_all_refine_modes(tag, models, weights, oracle):
    z = oracle(f"bgmv2_{tag}").net_io()
    m = models(tag)
    noisy = TOL[tag] is None
    m64 = _float64(mattecli.load_model(f"bgmv2.{tag}", weights=weights(tag), refine_mode="full")) if noisy else None
    src, bgr = torch.from_numpy(z["src"]), torch.from_numpy(z["bgr"])

    def small(t):
        return torch.nn.functional.interpolate(t, scale_factor=0.25, mode="bilinear", align_corners=False,
                                               recompute_scale_factor=True)

    with torch.inference_mode():
        raw = m.net.base(small(src), small(bgr))
    _close(tag, raw, lambda: m64.net.base(small(src.double()), small(bgr.double())).detach(), z["base_decoder_raw"],
           "base")
    for mode, pre, kw in (("full", "full", {}),
                          ("thresholding", "thr", {"threshold": float(z["thr_threshold"])}),
                          ("sampling", "smp", {"sample_pixels": int(z["smp_sample_pixels"])})):
        _set_mode(m, mode, **kw)
        with torch.inference_mode():
            outs = m.net(src, bgr)
            if noisy:
                _set_mode(m64, mode, **kw)
                outs64 = m64.net(src.double(), bgr.double())
            else:
                outs64 = [None] * len(outs)
        for name, got, got64 in zip(OUTS, outs, outs64):
            ref = z[f"{pre}_{name}"]
            if name == "ref_sm":
                np.testing.assert_array_equal(got.numpy(), ref, err_msg=f"{mode} {name}")
            else:
                _close(tag, got, lambda: got64, ref, f"{mode} {name}")
    _set_mode(m, "full")


@pytest.mark.parametrize("tag", ["mobilenetv2", "resnet50", "resnet101"])
def test_pipeline_inference_images(tag, weights, oracle):
    p = oracle(f"bgmv2_{tag}").pipeline_io()
    kw = dict(refine_mode="thresholding", refine_threshold=float(p["refine_threshold"]))
    m = mattecli.load_model(f"bgmv2.{tag}", weights=weights(tag), **kw)
    r = m.predict(p["src_rgb_u8"], background=p["bgr_rgb_u8"])
    r64 = None

    def ours64():
        nonlocal r64
        if r64 is None:
            m64 = _float64(mattecli.load_model(f"bgmv2.{tag}", weights=weights(tag), **kw))
            r64 = m64.predict(p["src_rgb_u8"], background=p["bgr_rgb_u8"])
        return r64

    assert r.alpha.shape == (156, 212) and r.alpha.dtype == np.float32
    _close(tag, r.alpha, lambda: ours64().alpha, p["pha"][0, 0], "pha")
    _close(tag, r.foreground, lambda: ours64().foreground, p["fgr"][0].transpose(1, 2, 0), "fgr")
    _close(tag, r.extras["err_sm"], lambda: ours64().extras["err_sm"], p["err_sm"][0, 0], "err_sm")
    np.testing.assert_array_equal(r.extras["ref_sm"], p["ref_sm"][0, 0])
    assert r.extras["error"].shape == (156, 212)


def test_options_reach_the_network(weights):
    m = mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), refine_mode="sampling",
                            refine_sample_pixels=640, refine_threshold=0.3, backbone_scale=0.125,
                            refine_prevent_oversampling=False)
    ref = m.net.refiner
    assert (ref.mode, ref.sample_pixels, ref.threshold, ref.prevent_oversampling) == ("sampling", 640, 0.3, False)
    assert m.net.backbone_scale == 0.125
    with pytest.raises(UsageError, match="refine_mode"):
        mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), refine_mode="everywhere")
    with pytest.raises(UsageError, match="backbone_scale"):
        mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), backbone_scale=0.75)
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), refine_treshold=0.3)


def test_sampling_default_k_on_small_image_is_clamped(models, oracle):
    """The official topk(80000 // 16) crashes under 80,000 px; ours refines every pixel with err > 0."""
    z = oracle("bgmv2_mobilenetv2").net_io()
    m = models("mobilenetv2")
    _set_mode(m, "sampling", sample_pixels=80_000)
    try:
        with torch.inference_mode():
            pha, fgr, _, _, err_sm, ref_sm = m.net(torch.from_numpy(z["src"]), torch.from_numpy(z["bgr"]))
    finally:
        _set_mode(m, "full")
    np.testing.assert_array_equal(ref_sm.numpy(), (err_sm > 0).float().numpy())
    assert 0 < ref_sm.sum() < ref_sm.numel()
    assert torch.isfinite(pha).all() and pha.shape == (1, 1, 96, 128)


def test_patch_chunks_give_identical_results(models, oracle):
    z = oracle("bgmv2_mobilenetv2").net_io()
    m = models("mobilenetv2")
    src, bgr = torch.from_numpy(z["src"]), torch.from_numpy(z["bgr"])
    _set_mode(m, "thresholding", threshold=float(z["thr_threshold"]))
    try:
        with torch.inference_mode():
            whole = m.net(src, bgr)
            m.net.refiner.chunk = 7
            chunked = m.net(src, bgr)
    finally:
        m.net.refiner.chunk = 16384
        _set_mode(m, "full")
    assert whole[5].sum() > 7
    for a, b in zip(whole, chunked):
        assert torch.equal(a, b)


@pytest.mark.parametrize("size", [(61, 83), (50, 70), (64, 96)])
def test_any_size_padded_and_cropped(size, models):
    m = models("mobilenetv2")
    rng = np.random.default_rng(3)
    h, w = size
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    r = m.predict(img, background=bg)
    assert r.alpha.shape == (h, w) and r.foreground.shape == (h, w, 3) and r.extras["error"].shape == (h, w)
    assert np.isfinite(r.alpha).all() and r.alpha.min() >= 0 and r.alpha.max() <= 1
    # exact undo: the result equals the network on the edge-padded input, cropped
    ph, pw = (-h) % 4, (-w) % 4
    src = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    bgr = torch.from_numpy(bg.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    pad = torch.nn.functional.pad
    with torch.inference_mode():
        pha = m.net(pad(src, (0, pw, 0, ph), mode="replicate"), pad(bgr, (0, pw, 0, ph), mode="replicate"))[0]
    np.testing.assert_array_equal(r.alpha, pha[0, 0, :h, :w].numpy())


@pytest.mark.parametrize("mode", ["full", "thresholding", "sampling"])
def test_batch_of_two_equals_two_singles(mode, weights):
    """The network on a batch of 2 == twice on batch 1 (in float64: float32 would group the sums differently)."""
    m = _float64(mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), refine_mode=mode,
                                     refine_threshold=0.01, refine_sample_pixels=4000))
    g = torch.Generator().manual_seed(0)
    src = torch.rand(2, 3, 48, 64, generator=g, dtype=torch.float64)
    bgr = torch.rand(2, 3, 48, 64, generator=g, dtype=torch.float64)
    with torch.inference_mode():
        both = m.net(src, bgr)
        one = [m.net(src[i:i + 1], bgr[i:i + 1]) for i in range(2)]
    assert 0 < both[5].sum() < both[5].numel() or mode == "full"
    for k in range(6):
        torch.testing.assert_close(both[k], torch.cat([one[0][k], one[1][k]]), rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def model64(weights):
    return _float64(mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), refine_mode="full"))


def test_predict_batch_equals_single_predicts(model64):
    """predict_batch on 2 equal-size images with their own plates == 2 x predict (float64: float32 may sum a batch
    in another order)."""
    m = model64
    rng = np.random.default_rng(7)
    imgs = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    plates = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    out = m.predict_batch(Batch(torch.from_numpy(imgs).permute(0, 3, 1, 2),
                                background=torch.from_numpy(plates).permute(0, 3, 1, 2)))
    assert out.alpha.shape == (2, 1, 50, 70) and out.extras["error"].shape == (2, 1, 50, 70)
    for i in range(2):
        r = m.predict(imgs[i], background=plates[i])
        got = out.result(i)
        np.testing.assert_allclose(got.alpha, r.alpha, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.foreground, r.foreground, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(got.background, r.background)


def test_predict_batch_on_device_with_one_plate(model64):
    """One plate broadcast to every frame of the batch (float64, as above)."""
    m = model64
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(3, 3, 42, 58, generator=g)
    plate = torch.rand(1, 3, 42, 58, generator=g)
    out = m.predict_batch(Batch(frames, background=plate))
    assert out.alpha.shape == (3, 1, 42, 58) and out.foreground.shape == (3, 3, 42, 58)
    for i in range(3):
        r = m.predict(frames[i].permute(1, 2, 0).numpy(), background=plate[0].permute(1, 2, 0).numpy())
        np.testing.assert_allclose(out.alpha[i, 0].numpy(), r.alpha, rtol=0, atol=1e-10)
    with pytest.raises(MissingInput, match="--bg"):
        m.predict_batch(Batch(frames))
    with pytest.raises(MissingInput, match="--bg"):
        m.predict(frames[0].permute(1, 2, 0).numpy())


def test_plate_of_another_size_is_resized(models):
    m = models("mobilenetv2")
    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 2, 0), 2, 1)  # 2x the image
    r = m.predict(img, background=big)
    assert r.alpha.shape == (48, 64) and r.background.shape == (48, 64, 3)
    frames = torch.from_numpy(np.stack([img, img])).permute(0, 3, 1, 2)
    out = m.predict_batch(Batch(frames, background=torch.from_numpy(big).permute(2, 0, 1)[None]))
    np.testing.assert_array_equal(out.result(1).background, r.background)
    with pytest.raises(InputError, match="aspect ratio"):
        m.predict(img, background=big[:, :100])


# -- converter ------------------------------------------------------------------------------------------------
def test_converter_round_trip_and_wrappings(tmp_path, weights, models):
    m = models("mobilenetv2")
    ours = m.net.state_dict()
    plain = tmp_path / "pytorch_mobilenetv2.pth"
    m.converter.write(ours, plain, m.spec)
    sd = torch.load(plain, weights_only=True)
    assert list(sd) == list(weights("mobilenetv2"))  # the official key order
    m2 = mattecli.load_model("bgmv2.mobilenetv2", weights=plain)
    for k, v in m2.net.state_dict().items():
        assert torch.equal(v, ours[k]), k
    assert m2.weights_sha256 and len(m2.weights_sha256) == 64
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, wrapped)
    m3 = mattecli.load_model("bgmv2.mobilenetv2", weights=wrapped)
    assert torch.equal(m3.net.state_dict()["refiner.conv4.weight"], ours["refiner.conv4.weight"])


def test_converter_rejects_wrong_layouts(tmp_path, weights):
    w = dict(weights("mobilenetv2"))
    extra = dict(w, **{"refiner.conv5.weight": torch.zeros(1)})
    with pytest.raises(ConverterError, match="unexpected keys refiner.conv5.weight"):
        mattecli.load_model("bgmv2.mobilenetv2", weights=extra)
    missing = dict(w)
    missing.pop("aspp.project.0.weight")
    with pytest.raises(ConverterError, match="missing key 'aspp.project.0.weight'"):
        mattecli.load_model("bgmv2.mobilenetv2", weights=missing)
    # a resnet50 file offered as mobilenetv2
    with pytest.raises(ConverterError):
        mattecli.load_model("bgmv2.mobilenetv2", weights=weights("resnet50"))
    ts = tmp_path / "torchscript_mobilenetv2_fp32.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(ts))
    with pytest.raises(ConverterError, match="TorchScript"):
        mattecli.load_model("bgmv2.mobilenetv2", weights=ts)


def test_missing_weights_message(isolated_home):
    with pytest.raises(WeightsUnavailable) as ei:
        mattecli.load_model("bgmv2.resnet101")
    msg = str(ei.value)
    assert "pytorch_resnet101.pth" in msg and "MIT" in msg and "releases/tag/v1.0.0" in msg
    assert "mattecli models import bgmv2.resnet101" in msg and "\n" not in msg


def test_registry_entry():
    from mattecli.registry import resolve

    e, w = resolve("bgmv2")
    assert w.tag == "resnet50" and e.requires == frozenset({"background"})
    assert [x.tag for x in e.weights] == ["resnet50", "resnet101", "mobilenetv2"]
    assert resolve("bgmv2.mobilenetv2")[1].filename == "pytorch_mobilenetv2.pth"
    for k in ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold", "refine_kernel_size",
              "refine_prevent_oversampling", "align"):
        assert k in e.options


# -- plate alignment ------------------------------------------------------------------------------------------
def _textured(h=240, w=320, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_NEAREST)
    for _ in range(60):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x, y), int(rng.integers(3, 15)), [int(c) for c in rng.integers(0, 256, 3)], -1)
    return img


def test_align_recovers_a_known_shift():
    import cv2

    from mattecli.backends.bgmv2.align import align_plate

    scene = _textured()
    M = np.float32([[1, 0, 7], [0, 1, -5]])
    plate = cv2.warpAffine(scene, M, (320, 240), borderMode=cv2.BORDER_REFLECT)  # camera moved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = align_plate(scene, plate)
    assert r.ok and r.inliers >= 15
    H = r.homography / r.homography[2, 2]
    np.testing.assert_allclose(H[:2, :2], np.eye(2), atol=0.01)
    np.testing.assert_allclose(H[:2, 2], [-7, 5], atol=0.3)
    inner = (slice(20, -20), slice(20, -20))
    before = np.abs(plate[inner].astype(int) - scene[inner]).mean()
    after = np.abs(r.plate[inner].astype(int) - scene[inner]).mean()
    assert after < 0.2 * before


def test_align_failure_warns_and_falls_back():
    from mattecli.backends.bgmv2.align import PlateAlignmentWarning, align_plate

    scene = _textured(seed=1)
    flat = np.full_like(scene, 128)
    with pytest.warns(PlateAlignmentWarning, match="plate alignment failed"):
        r = align_plate(scene, flat)
    assert not r.ok and r.plate is flat
    other = _textured(seed=2)  # textured but unrelated
    with pytest.warns(PlateAlignmentWarning):
        r = align_plate(scene, other)
    assert not r.ok and r.plate is other


def test_align_option_falls_back_to_unaligned_result(models, weights):
    m = models("mobilenetv2")
    m_al = mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), refine_mode="full", align=True)
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    plate = np.full_like(img, 90)
    with pytest.warns(UserWarning, match="plate alignment failed"):
        r = m_al.predict(img, background=plate)
    assert r.extras["alignment"]["aligned"] is False
    np.testing.assert_array_equal(r.alpha, m.predict(img, background=plate).alpha)


def test_cli_matte_with_plate(tmp_path, weights):
    from PIL import Image
    from typer.testing import CliRunner

    from mattecli.cli.app import app

    ck = tmp_path / "pytorch_mobilenetv2.pth"
    torch.save(weights("mobilenetv2"), ck)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 66, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(rng.integers(0, 256, (50, 66, 3), dtype=np.uint8)).save(tmp_path / "plate.png")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["matte", str(tmp_path / "img.png"), "--model", "bgmv2.mobilenetv2",
                                   "--bg", str(tmp_path / "plate.png"), "--weights", str(ck), "-o", str(out),
                                   "--device", "cpu", "--option", "refine_mode=full"])
    assert res.exit_code == 0, res.output
    files = list(out.rglob("*.png"))
    assert len(files) == 1
    a = np.asarray(Image.open(files[0]))
    assert a.shape == (50, 66)


def test_bf16_close_to_fp32(weights, models):
    m = models("mobilenetv2")
    mb = mattecli.load_model("bgmv2.mobilenetv2", weights=weights("mobilenetv2"), refine_mode="full",
                             precision="bf16")
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    a, b = m.predict(img, background=bg), mb.predict(img, background=bg)
    assert b.alpha.dtype == np.float32 and b.foreground.dtype == np.float32
    assert np.abs(a.alpha - b.alpha).mean() < 0.01


def test_cli_video_with_plate(tmp_path, weights):
    from PIL import Image
    from typer.testing import CliRunner
    from video_helpers import make_clip, synth_frame

    from mattecli.cli.app import app

    ck = tmp_path / "pytorch_mobilenetv2.pth"
    torch.save(weights("mobilenetv2"), ck)
    make_clip(tmp_path / "in.mp4", n=6, audio=False)
    plate = synth_frame(0).copy()
    plate[:] = plate[:, :1]  # the background without the moving square
    Image.fromarray(plate).save(tmp_path / "plate.png")
    out = tmp_path / "alpha.mp4"
    res = CliRunner().invoke(app, ["video", str(tmp_path / "in.mp4"), "--model", "bgmv2.mobilenetv2", "--bg",
                                   str(tmp_path / "plate.png"), "--weights", str(ck), "-t", "alpha", "-o", str(out),
                                   "--device", "cpu", "--batch-size", "3", "--option", "refine_mode=full"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.stat().st_size > 0
