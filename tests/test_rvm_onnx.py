"""RVM with the real pretrained weights (the authors' ONNX export, ../shared/weights): our torch model versus
onnxruntime on the same file, real photos, several downsample ratios, batch 1 and 4, 10 frames of recurrent state;
our ONNX reader (no onnx package on the product path) versus the onnx package and on hand-made protobufs."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import mattecli
from conftest import need_shared
from mattecli.backends.base import Batch
from mattecli.errors import ConverterError

ATOL = 1e-4
ONNX_SHA = "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine is oversubscribed; see test_rvm.py
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def onnx_path():
    return need_shared("weights", "rvm_mobilenetv3_fp32.onnx")


@pytest.fixture(scope="module")
def model(onnx_path):
    return mattecli.load_model("rvm", weights=str(onnx_path))


@pytest.fixture(scope="module")
def session(onnx_path):
    import onnxruntime as ort   # a dependency of mattecli
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def _read(path, size=None):
    import cv2

    img = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if size is not None:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


@pytest.fixture(scope="module")
def frames():
    """10 consecutive frames: a slow pan (shifted crops) over the downscaled bmv2 photo of a person."""
    big = _read(need_shared("data", "bmv2_pair", "test_fg.jpg"), (224, 126))
    return [np.ascontiguousarray(big[i:i + 108, 20 + 3 * i:20 + 3 * i + 160]) for i in range(10)]


@pytest.fixture(scope="module")
def bmv1_frames():
    d = need_shared("data", "background_matting_v1", "sample_data", "input")
    return [_read(p, (160, 90)) for p in sorted(d.glob("*_img.png"))]


def _ort_sequence(session, frames, ratio):
    """onnxruntime over the frames one by one, recurrent states carried (initial state zeros, broadcast)."""
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    out = []
    for f in frames:
        src = (f.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        fgr, pha, *rec = session.run(None, {"src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3],
                                            "downsample_ratio": np.array([ratio], np.float32)})
        out.append((fgr[0], pha[0, 0]))
    return out


def test_import_gives_folded_layout(model):
    from mattecli.backends.rvm.convert import is_folded_layout

    sd = model.net.state_dict()
    assert model.variant == "mobilenetv3" and is_folded_layout(sd)
    assert not any(k.startswith("project_seg") for k in sd)
    assert len(sd) == 162
    assert tuple(sd["backbone.features.16.0.bias"].shape) == (960,)  # the folded BatchNorm became a bias
    assert model.weights_sha256 == ONNX_SHA
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.net.modules())


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8])
def test_matches_onnxruntime_over_10_frames(ratio, model, session, frames):
    ref = _ort_sequence(session, frames, ratio)
    model.options["downsample_ratio"] = ratio
    model.reset()
    try:
        for i, (f, (fgr, pha)) in enumerate(zip(frames, ref)):
            r = model.predict(f)
            np.testing.assert_allclose(r.alpha, pha, atol=ATOL, rtol=0, err_msg=f"alpha frame {i}")
            np.testing.assert_allclose(r.foreground.transpose(2, 0, 1), fgr, atol=ATOL, rtol=0,
                                       err_msg=f"foreground frame {i}")
    finally:
        model.options["downsample_ratio"] = None
        model.reset()
    # the recurrent state matters: frame 10 differs from frame 10 run alone
    alone = model.predict(frames[-1]).alpha
    model.reset()
    assert np.abs(alone - ref[-1][1]).max() > 1e-3


def test_batch_4_matches_onnxruntime(model, session, frames):
    ratio = 0.4
    ref = _ort_sequence(session, frames, ratio)
    model.options["downsample_ratio"] = ratio
    model.reset()
    try:
        chunks = [frames[0:4], frames[4:8], frames[8:10]]
        got_a, got_f = [], []
        for c in chunks:
            x = torch.from_numpy(np.stack([f.transpose(2, 0, 1) for f in c]))
            out = model.predict_batch(Batch(x))
            got_a.append(out.alpha[:, 0].numpy())
            got_f.append(out.foreground.numpy())
    finally:
        model.options["downsample_ratio"] = None
        model.reset()
    np.testing.assert_allclose(np.concatenate(got_a), np.stack([p for _, p in ref]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.concatenate(got_f), np.stack([f for f, _ in ref]), atol=ATOL, rtol=0)


def test_ratio_1_matches_onnx_with_always_refine(model, session, bmv1_frames):
    """The ONNX export runs the guided-filter refiner at every ratio; the official PyTorch model skips it at 1."""
    ref = _ort_sequence(session, bmv1_frames, 1.0)
    model.reset()
    model.always_refine = True
    try:
        got = [model.predict(f) for f in bmv1_frames]
    finally:
        model.always_refine = False
        model.reset()
    for r, (fgr, pha) in zip(got, ref):
        np.testing.assert_allclose(r.alpha, pha, atol=ATOL, rtol=0)
        np.testing.assert_allclose(r.foreground.transpose(2, 0, 1), fgr, atol=ATOL, rtol=0)
    assert model.ratio_for(90, 160) == 1.0  # auto ratio at this size: the official default skips the refiner
    plain = model.predict(bmv1_frames[0])
    model.reset()
    assert np.abs(plain.alpha - ref[0][1]).max() > ATOL


def test_real_photos_cut_out_the_person(model):
    """A person cleanly cut out: body opaque, background transparent (auto ratio, official pipeline)."""
    cases = [
        (need_shared("data", "bmv2_pair", "test_fg.jpg"), [(0.49, 0.35), (0.45, 0.9)], [(0.1, 0.6), (0.9, 0.5)]),
        (need_shared("data", "background_matting_v1", "sample_data", "input", "0001_img.png"),
         [(0.45, 0.47), (0.49, 0.35), (0.45, 0.9)], [(0.1, 0.6), (0.9, 0.5)]),
    ]
    for path, person, background in cases:
        img = _read(path, (320, 180))
        model.reset()
        a = model.predict(img).alpha
        H, W = a.shape

        def patch(x, y):
            return a[int(y * H) - 2:int(y * H) + 3, int(x * W) - 2:int(x * W) + 3].mean()

        assert all(patch(x, y) > 0.95 for x, y in person), path
        assert all(patch(x, y) < 0.05 for x, y in background), path
        assert a[: H // 10].mean() < 0.05  # sky / background above the head
        assert 0.05 < (a > 0.5).mean() < 0.35
    model.reset()


def test_convert_file_and_cached_converted_file(model, onnx_path, tmp_path, frames):
    from mattecli.weights import converted

    ours, meta = model.converter.convert_file(onnx_path, model.spec)
    assert meta == {"format": "onnx", "variant": "mobilenetv3", "folded": True, "segmentation": False}
    conv = tmp_path / "rvm_mobilenetv3_fp32.onnx.mattecli.pt"
    converted.save(ours, conv, {"family": "rvm", **meta})
    m2 = mattecli.load_model("rvm", weights=str(conv))
    model.reset()
    np.testing.assert_array_equal(m2.predict(frames[0]).alpha, model.predict(frames[0]).alpha)
    model.reset()


def test_onnx_detected_by_content(model, onnx_path, tmp_path, frames):
    from mattecli.backends.rvm.convert import is_onnx_file

    p = tmp_path / "weights.bin"
    shutil.copy(onnx_path, p)
    assert is_onnx_file(p)
    m2 = mattecli.load_model("rvm", weights=str(p))
    model.reset()
    np.testing.assert_array_equal(m2.predict(frames[1]).alpha, model.predict(frames[1]).alpha)
    model.reset()


def test_onnx_errors(model, onnx_path, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not really a model" * 10)
    with pytest.raises(ConverterError, match="broken.onnx"):
        mattecli.load_model("rvm", weights=str(bad))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(onnx_path.read_bytes()[:5_000_000])
    with pytest.raises(ConverterError, match=r"cut\.onnx: not a readable ONNX file"):
        mattecli.load_model("rvm", weights=str(cut))

    # a graph whose convolutions do not have RVM's geometry is refused (edited with the onnx package)
    import onnx   # the test extra installs it
    m = onnx.load(str(onnx_path))
    for node in m.graph.node:
        if node.op_type == "Conv" and node.input[1] == "aspp.aspp2.1.weight":
            for a in node.attribute:
                if a.name == "strides":
                    a.ints[:] = [2, 2]
    odd = tmp_path / "odd.onnx"
    onnx.save(m, str(odd))
    with pytest.raises(ConverterError, match="strides"):
        model.converter.read(odd, model.spec)


# -- our ONNX reader ---------------------------------------------------------------------------------------------------
def test_reader_matches_the_onnx_package(onnx_path):
    """Every initialiser (name, dtype, shape, values) and every node (op, inputs, outputs, attributes) as the onnx
    package reads them."""
    import onnx   # the test extra installs it
    from onnx import helper, numpy_helper

    from mattecli.backends.rvm.onnx_reader import read_model

    g = read_model(onnx_path)
    ref = onnx.load(str(onnx_path))
    assert g.ir_version == ref.ir_version
    inits = {t.name: numpy_helper.to_array(t) for t in ref.graph.initializer}
    assert list(g.initializers) == list(inits)
    for k, v in inits.items():
        got = g.initializers[k]
        assert got.dtype == v.dtype and got.shape == v.shape and np.array_equal(got, v), k
    assert len(g.nodes) == len(ref.graph.node)
    for a, b in zip(ref.graph.node, g.nodes):
        assert (a.op_type, list(a.input), list(a.output), a.name) == (b.op_type, b.inputs, b.outputs, b.name)
        assert set(b.attrs) == {x.name for x in a.attribute}
        for x in a.attribute:
            v = helper.get_attribute_value(x)
            if isinstance(v, onnx.TensorProto):
                v = numpy_helper.to_array(v)
                assert b.attrs[x.name].dtype == v.dtype and np.array_equal(b.attrs[x.name], v)
            else:
                assert b.attrs[x.name] == v, (a.name, x.name)


# a minimal protobuf writer, to build ONNX messages without the onnx package
def _varint(n: int) -> bytes:
    n = int(n) & ((1 << 64) - 1)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _f(num: int, value) -> bytes:
    """Field ``num``: int -> varint, bytes -> length-delimited, float -> fixed32."""
    import struct

    if isinstance(value, bytes):
        return _varint(num << 3 | 2) + _varint(len(value)) + value
    if isinstance(value, float):
        return _varint(num << 3 | 5) + struct.pack("<f", value)
    return _varint(num << 3) + _varint(value)


def _packed(num: int, ints) -> bytes:
    return _f(num, b"".join(_varint(i) for i in ints))


def test_reader_on_hand_made_messages(tmp_path):
    """Packed and unpacked repeated fields, typed data fields, negative ints, float16 bits, attributes."""
    from mattecli.backends.rvm.onnx_reader import parse_model

    t_raw = _f(1, 2) + _f(1, 3) + _f(2, 1) + _f(8, b"w") + _f(9, np.arange(6, dtype="<f4").tobytes())
    t_floats = _packed(1, [2]) + _f(2, 1) + _f(8, b"f") + _f(4, np.array([1.5, -2.0], "<f4").tobytes())
    t_i64 = _f(1, 3) + _f(2, 7) + _f(8, b"i") + _packed(7, [5, -1, 1 << 40])
    t_half = _f(1, 2) + _f(2, 10) + _f(8, b"h") + _packed(5, np.array([1.0, -0.5], np.float16).view(np.uint16))
    t_scalar = _f(2, 11) + _f(8, b"d") + _f(10, np.array([0.25], "<f8").tobytes())
    attrs = (_f(5, _f(1, b"pads") + _f(8, 1) + _f(8, -1) + _f(20, 7))             # unpacked ints
             + _f(5, _f(1, b"strides") + _packed(8, [2, 2]) + _f(20, 7))           # packed ints
             + _f(5, _f(1, b"group") + _f(3, 4) + _f(20, 2))
             + _f(5, _f(1, b"alpha") + _f(2, 0.5) + _f(20, 1))
             + _f(5, _f(1, b"mode") + _f(4, b"nearest") + _f(20, 3))
             + _f(5, _f(1, b"value") + _f(5, t_floats) + _f(20, 4)))
    node = _f(1, b"x") + _f(1, b"w") + _f(2, b"y") + _f(3, b"conv0") + _f(4, b"Conv") + attrs
    graph = _f(1, node) + _f(2, b"g") + b"".join(_f(5, t) for t in (t_raw, t_floats, t_i64, t_half, t_scalar))
    g = parse_model(_f(1, 8) + _f(2, b"test") + _f(7, graph))
    assert g.ir_version == 8 and g.name == "g"
    w = g.initializers
    np.testing.assert_array_equal(w["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert w["f"].dtype == np.float32 and w["f"].tolist() == [1.5, -2.0]
    assert w["i"].dtype == np.int64 and w["i"].tolist() == [5, -1, 1 << 40]
    assert w["h"].dtype == np.float16 and w["h"].tolist() == [1.0, -0.5]
    assert w["d"].shape == () and w["d"].dtype == np.float64 and float(w["d"]) == 0.25
    (n,) = g.nodes
    assert (n.op_type, n.inputs, n.outputs, n.name) == ("Conv", ["x", "w"], ["y"], "conv0")
    assert n.attrs["pads"] == [1, -1] and n.attrs["strides"] == [2, 2] and n.attrs["group"] == 4
    assert n.attrs["alpha"] == 0.5 and n.attrs["mode"] == b"nearest"
    assert n.attrs["value"].tolist() == [1.5, -2.0]


@pytest.mark.parametrize("data,match", [
    (b"", "no ONNX model"),
    (_f(1, 7), "no ONNX model"),                                            # no graph
    (_f(1, 7) + _varint(7 << 3 | 2) + _varint(100) + b"xx", "past the end"),  # truncated graph
    (_f(1, 7) + _f(7, _f(5, _f(2, 1) + _f(8, b"e") + _f(14, 1))), "external file"),
    (_f(1, 7) + _f(7, _f(5, _f(1, 4) + _f(2, 1) + _f(8, b"s") + _f(9, b"\0" * 8))), "8 bytes of raw data"),
    (_f(1, 7) + _f(7, _f(5, _f(2, 8) + _f(8, b"txt"))), "data type 8"),
    (b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint"),
])
def test_reader_refuses_malformed_messages(data, match):
    from mattecli.backends.rvm.onnx_reader import OnnxFormatError, parse_model

    with pytest.raises(OnnxFormatError, match=match):
        parse_model(data)


def test_product_path_never_imports_onnx(onnx_path, tmp_path):
    """After a plain install (no onnx package), the ONNX weights convert, import into the cache and load."""
    import subprocess
    import sys

    code = f"""
import sys
sys.modules["onnx"] = None          # as if the onnx package were not installed: importing it raises ImportError
import numpy as np, mattecli
from mattecli.backends.install import import_file
from mattecli.registry import resolve
entry, wset = resolve("rvm")
p = import_file(entry, wset, {str(onnx_path)!r}, echo=None, progress=False)
assert p.name == "rvm_mobilenetv3_fp32.onnx.mattecli.pt", p
m = mattecli.load_model("rvm")
assert m.variant == "mobilenetv3" and m.weights_sha256 == {ONNX_SHA!r}
a = m.predict(np.full((36, 48, 3), 100, np.uint8)).alpha
assert a.shape == (36, 48) and np.isfinite(a).all()
m2 = mattecli.load_model("rvm", weights={str(onnx_path)!r})
assert sorted(m2.net.state_dict()) == sorted(m.net.state_dict())
assert "onnx" not in sys.modules or sys.modules["onnx"] is None
"""
    env = dict(__import__("os").environ, MATTECLI_HOME=str(tmp_path / "home"), MATTECLI_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]


def test_cli_matte_with_onnx_weights(onnx_path, tmp_path):
    from typer.testing import CliRunner

    from mattecli.cli.app import app

    import cv2

    img = _read(need_shared("data", "background_matting_v1", "sample_data", "input", "0001_img.png"), (192, 108))
    src = tmp_path / "person.png"
    cv2.imwrite(str(src), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["matte", str(src), "--model", "rvm", "--weights", str(onnx_path), "-o", str(out),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    files = sorted(out.glob("*.png"))
    assert files, res.output
    alpha = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert alpha.shape[:2] == (108, 192)
    assert alpha[50, 86] > 240 and alpha[60, 10] < 15
