"""RVM with the real pretrained weights (the authors' ONNX export, ../shared/weights): our torch model versus
onnxruntime on the same file, real photos, several downsample ratios, batch 1 and 4, 10 frames of recurrent state."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import mattecli
from conftest import need_shared
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
    pytest.importorskip("onnx")  # the importer's dependency (in the [test] extra)
    return need_shared("weights", "rvm_mobilenetv3_fp32.onnx")


@pytest.fixture(scope="module")
def model(onnx_path):
    return mattecli.load_model("rvm", weights=str(onnx_path))


@pytest.fixture(scope="module")
def session(onnx_path):
    ort = pytest.importorskip("onnxruntime")
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
            x = torch.from_numpy(np.stack([f.transpose(2, 0, 1) for f in c])).float() / 255.0
            out = model.predict_batch(x)
            got_a.append(out["alpha"][:, 0].numpy())
            got_f.append(out["foreground"].numpy())
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
    from mattecli.backends.checkpoint import save_ours
    from mattecli.backends.rvm import convert

    ours, meta = convert.convert_file(onnx_path)
    assert meta == {"format": "onnx", "variant": "mobilenetv3", "folded": True, "segmentation": False}
    conv = tmp_path / "rvm_mobilenetv3_fp32.onnx.mattecli.pt"
    save_ours(ours, conv, {"family": "rvm", **meta})
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


def test_onnx_errors(onnx_path, tmp_path, monkeypatch):
    import sys

    onnx = pytest.importorskip("onnx")
    from mattecli.backends.rvm import convert

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not really a model" * 10)
    with pytest.raises(ConverterError, match="broken.onnx"):
        mattecli.load_model("rvm", weights=str(bad))

    # a graph whose convolutions do not have RVM's geometry is refused
    m = onnx.load(str(onnx_path))
    for node in m.graph.node:
        if node.op_type == "Conv" and node.input[1] == "aspp.aspp2.1.weight":
            for a in node.attribute:
                if a.name == "strides":
                    a.ints[:] = [2, 2]
    odd = tmp_path / "odd.onnx"
    onnx.save(m, str(odd))
    with pytest.raises(ConverterError, match="strides"):
        convert.read_onnx(odd)

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConverterError, match="pip install onnx"):
        convert.read_onnx(onnx_path)


def test_cli_matte_with_onnx_weights(onnx_path, tmp_path):
    pytest.importorskip("mattecli.cli.matte")
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
