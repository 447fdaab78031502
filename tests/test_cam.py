"""Context-Aware Matting (``cam`` = ``cam.lap``, ``cam.lap-fea-da``, ``cam.lap-fea-da-color``) and the TF bundle I/O.

Tolerances: with the oracle's synthetic weights this 2x Xception-65 network amplifies float32 rounding: our own
float32 and float64 runs differ by up to ~0.25 in the logits (range +-60) and ~1.3 in the colour logits (range
+-135). The thresholds below sit just above that noise; a structural slip (e.g. BN eps 1e-5 instead of 1e-3 in the
backbone) gives mean errors of ~10, far outside them.
"""
from __future__ import annotations

import tarfile

import numpy as np
import pytest

import mattecli
from mattecli.errors import ConverterError, InputError, UsageError, WeightsUnavailable

LAP = "conmat_lap"
COLOR = "conmat_lap-fea-da-color"


def official_weights(oracle_cls, name: str) -> dict:
    """The oracle's synthetic weights in the official TF layout (layout.json 'synthetic_weights_rule')."""
    from conftest import _synthetic_module

    o = oracle_cls(name)
    tel, tfl = o.layout["torch_equivalent_layout"], o.layout["state_dict"]
    sd = _synthetic_module().synthetic_state_dict(tel)
    out = {}
    for (tk, _ts, _), (n, s, _dt) in zip(tel, tfl):
        v = sd[tk]
        if n.endswith("/depthwise_weights"):
            v = v.reshape(s[2], s[3], s[0], s[1]).transpose(2, 3, 0, 1)
        elif n.endswith("/weights"):
            v = v.transpose(2, 3, 1, 0)
        assert tuple(v.shape) == tuple(s), n
        out[n] = np.asarray(v, order="C")
    return out


@pytest.fixture(scope="module")
def lap():
    from conftest import Oracle

    w = official_weights(Oracle, LAP)
    return Oracle(LAP), w, mattecli.load_model("cam", weights=w)


@pytest.fixture(scope="module")
def color():
    from conftest import Oracle

    w = official_weights(Oracle, COLOR)
    return Oracle(COLOR), w, mattecli.load_model("cam.lap-fea-da-color", weights=w)


def _nchw(a):
    import torch

    return torch.from_numpy(a).permute(0, 3, 1, 2)


def _sample(h, w, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    tri = np.full((h, w), 128, np.uint8)
    tri[: h // 4] = 0
    tri[-h // 4:] = 255
    return img, tri


# -- TF tensor bundle ----------------------------------------------------------------------------------------------
def test_crc32c_known_values():
    from mattecli.backends.cam.tfbundle import _raw_crc_py, crc32c

    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    data = np.random.default_rng(0).integers(0, 256, 200_003, dtype=np.uint8).tobytes()  # vectorised path
    assert crc32c(data) == _raw_crc_py(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def test_bundle_round_trip(tmp_path):
    from mattecli.backends.cam import tfbundle

    rng = np.random.default_rng(1)
    tensors = {f"scope_{i:03d}/layer/weights": rng.standard_normal((3, 3, 4, i % 7 + 1)).astype(np.float32)
               for i in range(300)}  # enough entries for several data blocks
    tensors.update({
        "global_step": np.array(12345, dtype=np.int64),
        "a/BatchNorm/gamma": rng.standard_normal(5).astype(np.float32),
        "b/int": np.arange(6, dtype=np.int32).reshape(2, 3),
        "c/double": rng.standard_normal((2, 2)),
        "d/empty": np.zeros((0, 3), np.float32),
        "e/half": rng.standard_normal(4).astype(np.float16),
    })
    paths = tfbundle.write_bundle(tensors, str(tmp_path / "model.ckpt"))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["model.ckpt.index", "model.ckpt.data-00000-of-00001"]
    back = tfbundle.read_bundle_files(str(tmp_path / "model.ckpt"), verify_crc=True)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v), k
    hdr, entries = tfbundle.parse_index((tmp_path / "model.ckpt.index").read_bytes())
    assert hdr["num_shards"] == 1 and entries["global_step"]["shape"] == ()
    # the authors' model.tgz layout: model/<variant>/model.ckpt.*
    from mattecli.backends.cam.convert import read_checkpoint

    tgz = tmp_path / "model.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for p in paths:
            tf.add(p, arcname="model/lap_fea_da/" + p.rsplit("/", 1)[1])
    got = read_checkpoint(tgz, "lap-fea-da")
    assert set(got) == set(tensors) and all(np.array_equal(got[k], tensors[k]) for k in tensors)
    with pytest.raises(ConverterError, match="lap_fea_da_color"):
        read_checkpoint(tgz, "lap-fea-da-color")


def test_bundle_corruption_is_a_converter_error(tmp_path):
    from mattecli.backends.cam import tfbundle

    tfbundle.write_bundle({"x/weights": np.ones((2, 2), np.float32)}, str(tmp_path / "model.ckpt"))
    idx = tmp_path / "model.ckpt.index"
    raw = bytearray(idx.read_bytes())
    raw[3] ^= 0xFF
    idx.write_bytes(bytes(raw))
    with pytest.raises(ConverterError, match="crc32c"):
        tfbundle.read_bundle_files(str(tmp_path / "model.ckpt"))
    idx.write_bytes(b"not an sstable at all, definitely not" * 3)
    with pytest.raises(ConverterError, match="magic"):
        tfbundle.read_bundle_files(str(tmp_path / "model.ckpt"))


# -- network / pipeline oracles ----------------------------------------------------------------------------------
def test_lap_net_oracle(lap):
    import torch

    o, _, m = lap
    io = o.net_io()
    with torch.no_grad():
        out = m.net(_nchw(io["comp_image"]), _nchw(io["patch_image"]))
    d = np.abs(out["mat_logits"][0, 0].numpy() - io["mat_logits"][0, :, :, 0])
    assert d.max() < 1.0 and d.mean() < 0.08, (d.max(), d.mean())
    a = np.abs(out["alpha"][0, 0].numpy() - io["mat_pred"][0, :, :, 0])
    assert a.max() < 0.1 and a.mean() < 2e-3, (a.max(), a.mean())


def test_lap_pipeline_oracle(lap):
    o, _, m = lap
    p = o.pipeline_io()
    comp, patch = m.canvases(p["image_rgb_u8"], p["trimap_u8"])
    np.testing.assert_array_equal(patch, p["padded_patch_image"])
    r = m.predict(p["image_rgb_u8"], p["trimap_u8"])
    assert r.alpha.shape == (157, 211) and r.alpha.dtype == np.float32 and r.foreground is None
    d = np.abs(r.alpha - p["alpha"])
    assert d.mean() < 3e-3 and np.percentile(d, 99) < 0.05, (d.mean(), np.percentile(d, 99))
    known = (p["trimap_u8"] == 0) | (p["trimap_u8"] == 255)
    np.testing.assert_array_equal(r.alpha[known], p["alpha"][known])
    u8 = (r.alpha * 255).astype(np.uint8).astype(int)
    assert np.mean(np.abs(u8 - p["alpha_u8"]) > 2) < 0.02


def test_color_net_and_pipeline_oracle(color):
    import torch

    o, _, m = color
    io = o.net_io()
    with torch.no_grad():
        out = m.net(_nchw(io["comp_image"]), _nchw(io["patch_image"]))
    d = np.abs(out["mat_logits"][0, 0].numpy() - io["mat_logits"][0, :, :, 0])
    assert d.max() < 1.0 and d.mean() < 0.08, (d.max(), d.mean())
    c = np.abs(out["color"][0].permute(1, 2, 0).numpy() - io["color_pred"][0])
    assert c.max() < 2.0 and c.mean() < 0.2, (c.max(), c.mean())
    p = o.pipeline_io()
    r = m.predict(p["image_rgb_u8"], p["trimap_u8"])
    d = np.abs(r.alpha - p["alpha"])
    assert d.mean() < 3e-3 and np.percentile(d, 99) < 0.05, (d.mean(), np.percentile(d, 99))
    fg = np.clip(r.extras["raw_color"] * 255, 0, 255).astype(np.uint8).astype(int)
    e = np.abs(fg - p["fg_rgb_u8"])
    assert r.foreground.shape == (157, 211, 3) and 0 <= r.foreground.min() and r.foreground.max() <= 1
    assert np.median(e) <= 2 and np.mean(e > 40) < 0.05, (np.median(e), np.mean(e > 40))


def test_other_sizes_options_and_batch(lap):
    import torch

    _, w, m = lap
    img, tri = _sample(40, 53, 3)
    r = m.predict(img, tri)
    assert r.alpha.shape == (40, 53) and np.isfinite(r.alpha).all()
    comp, patch = m.canvases(img, tri)
    assert patch.shape == (1, 49, 65, 4)  # smallest 16k+1 per side
    saved = dict(m.options)
    try:
        m.options.update(vis_patch_crop_size=(33, 70))
        with pytest.raises(InputError, match="vis_patch_crop_size"):
            m.predict(img, tri)
        m.options.update(vis_patch_crop_size=(49, 65), vis_comp_crop_size=(33, 49))  # comp != patch (imresize)
        comp, patch = m.canvases(img, tri)
        assert comp.shape == (1, 33, 49, 4) and patch.shape == (1, 49, 65, 4)
        assert m.predict(img, tri).alpha.shape == (40, 53)
    finally:
        m.options.clear()
        m.options.update(saved)
    x = torch.from_numpy(np.random.default_rng(4).uniform(0, 255, (2, 4, 33, 49)).astype(np.float32))
    with torch.no_grad():
        both = m.net(x, x)["mat_logits"]
        one = torch.cat([m.net(x[:1], x[:1])["mat_logits"], m.net(x[1:], x[1:])["mat_logits"]])
    np.testing.assert_allclose(both.numpy(), one.numpy(), atol=1e-3)
    with pytest.raises(UsageError, match="vis_patch_crop_size"):
        mattecli.load_model("cam", weights=w, vis_patch_crop_size="big")


def test_tiling_runs(lap):
    _, _, m = lap
    img, tri = _sample(60, 90, 8)
    saved = dict(m.options)
    try:
        m.options["tile"] = 65  # two overlapping 60x65 tiles
        r = m.predict(img, tri)
    finally:
        m.options.clear()
        m.options.update(saved)
    assert r.alpha.shape == (60, 90) and np.isfinite(r.alpha).all()
    assert (r.alpha[tri == 255] == 1).all() and (r.alpha[tri == 0] == 0).all()


# -- converter ---------------------------------------------------------------------------------------------------
def test_checkpoint_files_round_trip(lap, tmp_path):
    """ours -> TF bundle (folder / .index / model.tgz) -> identical tensors; the CLI loads the folder."""
    from mattecli.backends.cam import convert

    _, w, m = lap
    ours = m.net.state_dict()
    folder = tmp_path / "model" / "lap"
    folder.mkdir(parents=True)
    convert.write_checkpoint(ours, folder)
    back = convert.read_checkpoint(folder)
    assert set(back) == set(w)
    for k, v in w.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    idx = str(folder / "model.ckpt.index")
    assert convert.index_path(folder) == convert.index_path(str(folder / "model.ckpt")) == idx
    assert convert.index_path(tmp_path / "model", "lap") == idx  # the authors' model/ folder, by weight set
    # load_model(weights=<file>) through the CLI, with the authors' model/ folder (the lap sub-folder is picked)
    pytest.importorskip("mattecli.cli.matte")
    from foundation_helpers import invoke
    from mattecli.imaging.io import read_image, write_image

    img, tri = _sample(40, 53, 3)
    write_image(tmp_path / "a.png", img)
    write_image(tmp_path / "a_trimap.png", tri)
    r = invoke("matte", tmp_path / "a.png", "--trimap", tmp_path / "a_trimap.png", "-o", tmp_path / "out",
               "--model", "cam", "--weights", tmp_path / "model", "--device", "cpu", "-q")
    assert r.exit_code == 0, r.stderr
    got = read_image(tmp_path / "out" / "a_alpha.png").astype(float) / 255
    assert got.shape == (40, 53)
    assert np.abs(got - m.predict(img, tri).alpha).max() <= 1 / 255 + 1e-6
    tgz = tmp_path / "model.tar"  # the authors ship model.tgz; tarfile reads both alike (uncompressed: faster test)
    with tarfile.open(tgz, "w") as tf:
        tf.add(tmp_path / "model", arcname="model")
    from_tgz = convert.read_checkpoint(tgz, "lap")
    assert all(np.array_equal(from_tgz[k], w[k]) for k in w)
    with pytest.raises(ConverterError, match="lap_fea_da_color"):
        convert.read_checkpoint(tgz, "lap-fea-da-color")
    with pytest.raises(ConverterError, match="model.ckpt.index"):
        mattecli.load_model("cam.lap-fea-da", weights=tmp_path / "model")


def test_converter_keys(lap, color):
    import torch

    _, w, m = lap
    _, wc, _ = color
    # optimiser slots are discarded, unknown names raise, missing names raise
    extra = dict(w, **{"comp/encoder/aspp0/weights/Momentum": np.zeros((1, 1, 2048, 256), np.float32),
                       "beta1_power": np.float32(0.9)})
    from mattecli.backends.cam.convert import to_official, to_ours

    ours = to_ours(extra)
    assert set(ours) == set(m.net.state_dict())
    with pytest.raises(ConverterError, match="unexpected keys patch/foo"):
        to_ours(dict(w, **{"patch/foo/weights": np.zeros(3, np.float32)}))
    missing = dict(w)
    missing.pop("comp_proj/comp_proj_1/biases")
    with pytest.raises(ConverterError, match="comp_proj_1/biases"):
        to_ours(missing)
    # the alpha-only models ignore the colour decoder the way TF's Saver does; the colour model needs it
    assert set(to_ours(wc, color=False)) == set(ours)
    with pytest.raises(ConverterError, match="patch/seg_decoder"):
        to_ours(w, color=True)
    off = to_official(ours)
    assert set(off) == set(w) and all(off[k].shape == w[k].shape for k in w)
    assert off["comp/encoder/xception_65/entry_flow/conv1_1/weights"].shape == (3, 3, 4, 32)
    assert np.array_equal(off["comp/encoder/xception_65/entry_flow/block1/unit_1/xception_module/"
                              "separable_conv1_depthwise/depthwise_weights"],
                          w["comp/encoder/xception_65/entry_flow/block1/unit_1/xception_module/"
                            "separable_conv1_depthwise/depthwise_weights"])
    assert isinstance(ours["global_step"], torch.Tensor) and ours["global_step"].dtype == torch.int64


def test_registry_and_missing_weights(isolated_home):
    from mattecli.registry import resolve

    assert resolve("cam")[0].name == "cam.lap"
    assert resolve("cam.lap-fea-da")[0].name == "cam.lap-fea-da"
    e = resolve("cam.lap-fea-da-color")[0]
    assert "foreground" in e.outputs and "vis_patch_crop_size" in e.options
    with pytest.raises(WeightsUnavailable) as err:
        mattecli.load_model("cam.lap-fea-da")
    msg = str(err.value)
    assert "model.tgz" in msg and "web.cecs.pdx.edu" in msg and "research" in msg
    assert "mattecli models import cam.lap-fea-da " in msg and "\n" not in msg
