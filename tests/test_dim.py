"""Deep Image Matting (huochaitiantang VGG16 stage 1 = ``dim``; foamliu SegNet = ``dim.foamliu``)."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import mattecli
from mattecli.errors import ConverterError, InputError, UsageError, WeightsUnavailable
from trimap_model_helpers import batch_of, batch_vs_singles, float64_copy

HUO = "dim_huochaitiantang-vgg16-skip-stage1"
FOAM = "dim_foamliu-segnet"


@pytest.fixture(scope="module")
def huo():
    from conftest import Oracle

    o = Oracle(HUO)
    w = o.torch_weights()
    return o, w, mattecli.load_model("dim", weights=w)


@pytest.fixture(scope="module")
def foam():
    from conftest import Oracle

    o = Oracle(FOAM)
    w = o.torch_weights()
    return o, w, mattecli.load_model("dim.foamliu", weights=w)


def _same_state(a, b):
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and bool((sa[k] == sb[k]).all()), k


# -- registry ----------------------------------------------------------------------------------------------------
def test_names_resolve():
    from mattecli.registry import resolve

    assert resolve("dim")[0].name == "dim" and resolve("dim")[1].tag == "huochaitiantang"
    assert resolve("dim.huochaitiantang")[1].filename == "stage1_skip_sad_52.9.pth"
    e, w = resolve("dim.foamliu")
    assert e.name == "dim.foamliu" and w.filename == "BEST_checkpoint.tar"
    assert "trimap" in e.requires


# -- huochaitiantang -----------------------------------------------------------------------------------------------
def test_huo_net_oracle(huo):
    import torch

    o, _, m = huo
    io = o.net_io()
    with torch.no_grad():
        y = m.net(torch.from_numpy(io["x"])).numpy()
    np.testing.assert_allclose(y, io["pred_mattes"], atol=1e-5, rtol=0)


def test_huo_pipeline_oracle(huo):
    o, _, m = huo
    p = o.pipeline_io()
    r = m.predict(p["image_rgb_u8"], p["trimap_u8"])
    np.testing.assert_allclose(r.extras["raw_alpha"], p["pred_float"], atol=1e-5, rtol=0)
    u8 = (r.extras["raw_alpha"] * 255).astype(np.uint8)
    u8[p["trimap_u8"] == 255] = 255
    u8[p["trimap_u8"] == 0] = 0
    assert np.abs(u8.astype(int) - p["alpha_u8"]).max() <= 1
    assert r.alpha.shape == p["trimap_u8"].shape and r.alpha.dtype == np.float32
    assert (r.alpha[p["trimap_u8"] == 255] == 1).all() and (r.alpha[p["trimap_u8"] == 0] == 0).all()


def _sample(h, w, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    tri = np.full((h, w), 128, np.uint8)
    tri[: h // 4] = 0
    tri[-h // 4:] = 255
    return img, tri


@pytest.mark.parametrize("size", [(64, 96), (67, 101), (33, 45)])
def test_huo_other_sizes(huo, size):
    _, _, m = huo
    img, tri = _sample(*size, seed=size[0])
    r = m.predict(img, tri)
    assert r.alpha.shape == size and np.isfinite(r.alpha).all()
    assert 0 <= r.alpha.min() and r.alpha.max() <= 1
    # float inputs give the same result as uint8 inputs
    r2 = m.predict(img.astype(np.float32) / 255, tri.astype(np.float32) / 255)
    np.testing.assert_allclose(r2.alpha, r.alpha, atol=1e-6)


def test_huo_too_small_and_bad_trimap(huo):
    _, _, m = huo
    img, tri = _sample(20, 40, 1)
    with pytest.raises(InputError, match="32x32"):
        m.predict(img, tri)
    img, tri = _sample(40, 40, 1)
    with pytest.raises(InputError, match="trimap size"):
        m.predict(img, tri[:30])
    with pytest.raises(mattecli.errors.MissingInput, match="--trimap"):
        m.predict(img)


def test_huo_batch2_equals_batch1(huo):
    import torch

    _, _, m = huo
    # float64: in float32 a reordered sum can flip a max-pool/unpool index at a near tie of random inputs
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((2, 4, 64, 96)))
    net64 = float64_copy(m).net
    with torch.no_grad():
        both = net64(x)
        one = torch.cat([net64(x[:1]), net64(x[1:])])
    np.testing.assert_allclose(both.numpy(), one.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["whole", "resize", "crop"])
def test_huo_predict_batch_equals_singles(huo, mode):
    _, _, m = huo
    pairs = [_sample(70, 100, 21), _sample(70, 100, 22)]
    pairs[1][1][:, 64:] = 0   # item 1 has no unknown pixel in the right-hand crops: they are skipped for it alone
    batch = batch_of(pairs)
    m64 = float64_copy(m)
    for model in (m, m64):
        model.options.update(crop_or_resize=mode, size_h=64, size_w=64)
    try:
        pred = m.predict_batch(batch)
        assert pred.alpha.shape == (2, 1, 70, 100) and pred.extras["raw_alpha"].shape == (2, 1, 70, 100)
        # float64 only: in float32 a reordered sum (a batch of 2 vs 1) can flip a max-pool/unpool index at a near
        # tie of these random inputs and synthetic weights, a discrete ~1e-3 change that float noise does not bound
        assert batch_vs_singles(m64, batch) <= 1e-6   # only the float32 rounding of the output is left
        for i in range(2):
            known = pairs[i][1] != 128
            assert np.array_equal(pred.result(i).alpha[known], m.predict(*pairs[i]).alpha[known])
    finally:
        for model in (m, m64):
            model.options.update(crop_or_resize="whole", size_h=320, size_w=320)


def test_huo_resize_and_crop_modes(huo):
    _, w, m = huo
    img, tri = _sample(70, 100, 7)
    saved = dict(m.options)
    try:
        for mode in ("resize", "crop"):
            m.options.update(crop_or_resize=mode, size_h=64, size_w=64)
            r = m.predict(img, tri)
            assert r.alpha.shape == (70, 100) and np.isfinite(r.alpha).all()
    finally:
        m.options.clear()
        m.options.update(saved)
    with pytest.raises(UsageError, match="crop_or_resize"):
        mattecli.load_model("dim", weights=w, crop_or_resize="tiles")
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model("dim", weights=w, stage=2)


def test_huo_bad_options_refused_at_load(huo):
    _, w, _ = huo
    with pytest.raises(UsageError, match=r"max_size=16: out of range; valid: an integer >= 32"):
        mattecli.load_model("dim", weights=w, max_size=16)
    with pytest.raises(UsageError, match=r"size_h=100.*multiples of 32"):
        mattecli.load_model("dim", weights=w, size_h=100)
    with pytest.raises(UsageError, match="size_w"):
        mattecli.load_model("dim", weights=w, size_w="wide")
    with pytest.raises(UsageError, match="this model takes no options"):
        mattecli.load_model("dim.foamliu", weights=w, max_size=64)


def test_huo_max_size(huo):
    """max_size caps the network input: an image 100 px tall with max_size 64 runs at 64 rows."""
    _, w, _ = huo
    m = mattecli.load_model("dim", weights=w, max_size=64)
    seen = []
    orig = m.forward
    m.forward = lambda inputs: (seen.append(tuple(inputs[0].shape)), orig(inputs))[1]
    img, tri = _sample(100, 130, 3)
    assert m.predict(img, tri).alpha.shape == (100, 130)
    assert seen == [(1, 4, 64, 64)]


def test_huo_round_trip_wrappings(huo, tmp_path):
    import torch

    _, w, m = huo
    ours = m.net.state_dict()
    p = tmp_path / "stage1_skip_sad_52.9.pth"
    m.converter.write(ours, p, m.spec)
    obj = torch.load(p, weights_only=True)
    assert set(obj) == {"epoch", "state_dict", "best_sad"}
    _same_state(mattecli.load_model("dim", weights=p), m)
    # DataParallel-style prefix and a plain state dict
    q = tmp_path / "prefixed.pth"
    torch.save({"module." + k: v for k, v in w.items()}, q)
    _same_state(mattecli.load_model("dim.huochaitiantang", weights=q), m)
    # a leftover key and a missing key
    bad = dict(w, extra_layer=torch.zeros(3))
    with pytest.raises(ConverterError, match="extra_layer"):
        mattecli.load_model("dim", weights=bad)
    missing = dict(w)
    missing.pop("deconv1.bias")
    with pytest.raises(ConverterError, match="deconv1.bias"):
        mattecli.load_model("dim", weights=missing)
    stage2 = dict(w, **{"refine_conv1.weight": torch.zeros(64, 4, 3, 3)})
    with pytest.raises(ConverterError, match="stage 2"):
        mattecli.load_model("dim", weights=stage2)


# -- foamliu -------------------------------------------------------------------------------------------------------
def test_foam_net_oracle(foam):
    import torch

    o, _, m = foam
    io = o.net_io()
    with torch.no_grad():
        y = m.net(torch.from_numpy(io["x"]))[:, 0].numpy()
    np.testing.assert_allclose(y, io["pred"], atol=1e-5, rtol=0)


def test_foam_pipeline_oracle(foam):
    o, _, m = foam
    p = o.pipeline_io()
    r = m.predict(p["image_rgb_u8"], p["trimap_u8"])
    np.testing.assert_allclose(r.extras["raw_alpha"], p["pred_raw"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(r.alpha, p["alpha"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(45, 61), (64, 64)])
def test_foam_other_sizes_and_batch(foam, size):
    import torch

    _, _, m = foam
    img, tri = _sample(*size, seed=11)
    assert m.predict(img, tri).alpha.shape == size
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 4) + size).astype(np.float32))
    # On standard-normal inputs this SegNet's max-pool/unpool indices flip at near ties when float32 sums are
    # reordered (a batch of 2 vs 1), which moves a few outputs by ~1e-3 on some CPUs (AVX2): compare in float64,
    # where the ties do not flip
    net64 = float64_copy(m).net
    with torch.no_grad():
        both64 = net64(x.double())
        np.testing.assert_allclose(both64.numpy(), torch.cat([net64(x[:1].double()), net64(x[1:].double())]).numpy(),
                                   rtol=0, atol=1e-12)
    batch = batch_of([_sample(*size, seed=12), _sample(*size, seed=13)])
    assert batch_vs_singles(float64_copy(m), batch) <= 1e-6


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-format", "zip-format"])
def test_foam_pickled_whole_model_round_trip(foam, tmp_path, legacy):
    import torch

    _, w, m = foam
    p = tmp_path / "BEST_checkpoint.tar"
    m.converter.write(m.net.state_dict(), p, m.spec, legacy=legacy)
    with pytest.raises(pickle.UnpicklingError):  # torch's own safe loader refuses whole pickled objects
        torch.load(p, weights_only=True)
    back = m.converter.read(p, m.spec)
    assert set(back) == set(w)
    for k in w:
        assert torch.equal(back[k], w[k]), k
    _same_state(mattecli.load_model("dim.foamliu", weights=p), m)


def test_foam_file_structure_is_the_official_one(foam, tmp_path):
    """The written file references the official class names (models.DIMModel, DataParallel, Adam ...)."""
    from mattecli.backends.dim import restricted_pickle

    _, _, m = foam
    p = tmp_path / "BEST_checkpoint.tar"
    m.converter.write(m.net.state_dict(), p, m.spec, legacy=False)
    obj = restricted_pickle.restricted_torch_load(p)
    assert set(obj) == {"epoch", "epochs_since_improvement", "loss", "model", "optimizer"}
    dp = obj["model"]
    assert (dp._module, dp._qualname) == ("torch.nn.parallel.data_parallel", "DataParallel")
    inner = dp.state()["_modules"]["module"]
    assert (inner._module, inner._qualname) == ("models", "DIMModel")
    assert inner.state()["_modules"]["down1"]._qualname == "segnetDown2"
    assert obj["optimizer"]._module.startswith("torch.optim")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_foam_malicious_pickle_refused_not_executed(tmp_path, zip_format):
    import torch

    marker = tmp_path / "pwned"
    p = tmp_path / "BEST_checkpoint.tar"
    torch.save({"model": _Evil(str(marker)), "epoch": 1}, p, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ConverterError, match="refused") as e:
        mattecli.load_model("dim.foamliu", weights=p)
    assert "system" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()
    q = tmp_path / "eval.tar"
    torch.save({"model": _EvalEvil()}, q, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ConverterError, match=r"\.eval, which is not part"):
        mattecli.load_model("dim.foamliu", weights=q)


def test_foam_plain_state_dict_and_leftovers(foam, tmp_path):
    import torch

    _, w, m = foam
    p = tmp_path / "plain.pth"
    torch.save({"module." + k: v for k, v in w.items()}, p)
    _same_state(mattecli.load_model("dim.foamliu", weights=p), m)
    with pytest.raises(ConverterError, match="unexpected"):
        mattecli.load_model("dim.foamliu", weights=dict(w, **{"up0.conv.weight": torch.zeros(1)}))
    old = {k: v for k, v in w.items() if not k.endswith("num_batches_tracked")}  # torch < 0.4.1 files
    _same_state(mattecli.load_model("dim.foamliu", weights=old), m)
    # huochaitiantang's loader refuses the whole-object pickle with a pointer to dim.foamliu
    q = tmp_path / "BEST_checkpoint.tar"
    m.converter.write(m.net.state_dict(), q, m.spec, legacy=False)
    with pytest.raises(ConverterError, match="dim.foamliu"):
        mattecli.load_model("dim", weights=q)


# -- weights missing / CLI ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,file,cmd", [
    ("dim", "stage1_skip_sad_52.9.pth", "mattecli models import dim "),
    ("dim.foamliu", "BEST_checkpoint.tar", "mattecli models import dim.foamliu "),
])
def test_missing_weights_message(isolated_home, name, file, cmd):
    with pytest.raises(WeightsUnavailable) as e:
        mattecli.load_model(name)
    msg = str(e.value)
    assert file in msg and cmd in msg and "github.com" in msg and "non-commercial" in msg
    assert "\n" not in msg


def test_cli_matte_with_official_file(huo, tmp_path):
    from foundation_helpers import invoke
    from mattecli.imaging.io import read_image, write_image

    _, _, m = huo
    ck = tmp_path / "stage1_skip_sad_52.9.pth"
    m.converter.write(m.net.state_dict(), ck, m.spec)
    img, tri = _sample(40, 52, 9)
    write_image(tmp_path / "a.png", img)
    write_image(tmp_path / "a_trimap.png", tri)
    r = invoke("matte", tmp_path / "a.png", "--trimap", tmp_path / "a_trimap.png", "-o", tmp_path / "out",
               "--model", "dim", "--weights", ck, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.stderr
    got = read_image(tmp_path / "out" / "a_alpha.png")
    want = m.predict(img, tri).alpha
    assert got.shape == (40, 52) and np.abs(got.astype(float) / 255 - want).max() <= 1 / 255 + 1e-6


class _TorchFnEvil:
    def __reduce__(self):
        import torch

        return (torch.save, ({}, "/tmp/should_not_exist_dim_test.pt"))


def test_foam_restricted_unpickler_other_refusals(tmp_path):
    import torch

    from mattecli.backends.dim.restricted_pickle import restricted_torch_load

    p = tmp_path / "a.tar"
    torch.save({"model": _TorchFnEvil()}, p)
    with pytest.raises(ConverterError, match="torch.serialization.save"):
        restricted_torch_load(p)
    assert not os.path.exists("/tmp/should_not_exist_dim_test.pt")
    q = tmp_path / "trunc.tar"
    q.write_bytes(p.read_bytes()[:50])
    with pytest.raises(ConverterError):
        restricted_torch_load(q)
    (tmp_path / "junk.tar").write_bytes(b"\x00" * 100)
    with pytest.raises(ConverterError):
        restricted_torch_load(tmp_path / "junk.tar")
