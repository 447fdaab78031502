"""The model contract, for every entry of the registry (parametrised over ``list_models()``, as timm's and
segmentation_models_pytorch's model testers do):

* every family imports and registers (a family that fails to import is an error, never a gap);
* every option is typed data, and a value outside its domain is refused at load with the valid values;
* the model builds from the oracle's synthetic weights (official key layout), predicts at odd sizes with the right
  shapes, dtypes and ranges, keeps trimap-known pixels where the entry needs a trimap;
* a batch of two equals two single predictions (in float64, where only rounding is left);
* the converter round-trips: our weights written in the authors' own wrapping load back identical.

A new registry entry must get a row in ``ORACLES`` (or be a classical model), so nothing escapes these checks.
"""
from __future__ import annotations

import numpy as np
import pytest

import mattecli
from mattecli.errors import UsageError
from mattecli.options import Option
from mattecli.registry import FAMILIES, list_models

pytestmark = pytest.mark.shared

#: registry entry -> (oracle folder with its synthetic weights, extra load options, test size (h, w))
ORACLES = {
    "rvm": ("rvm_mobilenetv3", {}, (45, 61)),
    "fba": ("fba_resnet50-gn-ws", {}, (37, 53)),
    "gca": ("gca_dist-all-data", {}, (37, 53)),
    "dim": ("dim_huochaitiantang-vgg16-skip-stage1", {}, (64, 96)),
    "dim.foamliu": ("dim_foamliu-segnet", {}, (37, 53)),
    "sim": ("sim_matting", {"classifier_weights": "sim_classifier"}, (37, 53)),
    "cam.lap": ("conmat_lap", {}, (33, 45)),       # CAM pastes into a 16k+1 canvas: here 33 x 49
    "cam.lap-fea-da": ("conmat_lap", {}, (33, 45)),
    "cam.lap-fea-da-color": ("conmat_lap-fea-da-color", {}, (33, 45)),
    "modnet": ("modnet_mobilenetv2", {"ref_size": 64}, (37, 53)),
    "ppmatting": ("ppmatting_hrnet-w18-human", {}, (37, 53)),
    "gfm": ("gfm_r34_tt", {}, (37, 53)),
    "bgmv2": ("bgmv2_resnet50", {}, (37, 53)),
    "bgm": ("bgmv1_netg", {"segmenter": None}, (37, 53)),
    "bisenetv2.cocostuff": ("bisenetv2_coco", {}, (37, 53)),
    "bisenetv2.cityscapes": ("bisenetv2_city", {}, (37, 53)),
}
ENTRIES = [e.name for e in list_models()]


def test_every_family_registers():
    import importlib

    families = {e.family for e in list_models()}
    assert families == set(FAMILIES)
    for fam in FAMILIES:
        importlib.import_module(f"mattecli.backends.{fam}.adapter")


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_is_complete_data(name):
    e = mattecli.list_models()[[x.name for x in mattecli.list_models()].index(name)]
    assert e.summary and e.adapter and e.code_license and e.outputs[0] in ("alpha",)
    assert all(isinstance(o, Option) and o.domain() for o in e.options.values())
    assert e.validate_options({}) == e.option_defaults()
    if e.weights:
        assert name in ORACLES, f"{name}: add its oracle to ORACLES so the contract covers it"
    from mattecli.api import adapter_class

    cls = adapter_class(e)
    if e.weights:
        from mattecli.backends.base import Converter

        assert isinstance(cls.converter, Converter)


def _bad_value(opt: Option):
    if opt.choices:
        return "not-a-choice-!"
    return {"bool": "maybe", "int": "1.5x", "float": "abc", "list": 7}.get(opt.type)


@pytest.mark.parametrize("name", ENTRIES)
def test_bad_option_refused_at_load(name):
    e = next(x for x in mattecli.list_models() if x.name == name)
    with pytest.raises(UsageError, match="unknown option"):
        mattecli.load_model(name, weights={} if e.weights else None, not_an_option=1)
    for key, opt in e.options.items():
        bad = _bad_value(opt)
        if bad is None:
            continue
        with pytest.raises(UsageError, match=key):
            mattecli.load_model(name, weights={} if e.weights else None, **{key: bad})
        break


# -- building and predicting -------------------------------------------------------------------------------------
_MODELS: dict = {}


def _official(folder):
    from conftest import Oracle

    return Oracle(folder).torch_weights()   # the oracle's recipe, special layouts included (conftest)


def _load(name, **extra):
    key = (name, tuple(sorted(extra.items())))
    if key not in _MODELS:
        e = next(x for x in mattecli.list_models() if x.name == name)
        if not e.weights:
            _MODELS.clear()
            _MODELS[key] = mattecli.load_model(name, **extra)
        else:
            folder, opts, _ = ORACLES[name]
            opts = {k: (_official(v) if k == "classifier_weights" else v) for k, v in opts.items()}
            _MODELS.clear()       # one model at a time: some synthetic weight sets are large
            _MODELS[key] = mattecli.load_model(name, weights=_official(folder), **opts, **extra)
    return _MODELS[key]


def _inputs(e, h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    tri = bg = None
    if "trimap" in e.requires:
        yy, xx = np.mgrid[0:h, 0:w]
        r = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.35 * w)) ** 2
        tri = np.zeros((h, w), np.uint8)
        tri[r < 1.5] = 128
        tri[r < 0.5] = 255
    if "background" in e.requires:
        bg = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    return img, tri, bg


def _size(name):
    if name == "lkm":
        return (45, 61)     # its default radius 10 needs 21 x 21 windows
    return ORACLES[name][2] if name in ORACLES else (37, 53)


@pytest.mark.parametrize("name", ENTRIES)
def test_predict_shapes_dtypes_ranges(name):
    e = next(x for x in mattecli.list_models() if x.name == name)
    h, w = _size(name)
    img, tri, bg = _inputs(e, h, w)
    kw = {"segmentation": np.full((h, w), 255, np.uint8)} if e.family == "bgm" else {}
    m = _load(name)
    if kw:
        from mattecli.backends.base import Batch

        r = m.predict_batch(Batch.from_numpy(img, tri, bg), **kw).result(0)
    else:
        r = m.predict(img, trimap=tri, background=bg)
    assert r.alpha.shape == (h, w) and r.alpha.dtype == np.float32
    assert np.isfinite(r.alpha).all() and r.alpha.min() >= 0 and r.alpha.max() <= 1
    if r.foreground is not None:
        assert r.foreground.shape == (h, w, 3) and r.foreground.dtype == np.float32
        assert r.foreground.min() >= 0 and r.foreground.max() <= 1
    if "foreground" in e.outputs and e.kind == "matting":
        assert r.foreground is not None
    if tri is not None:
        assert (r.alpha[tri == 0] == 0).all() and (r.alpha[tri == 255] == 1).all()


@pytest.mark.parametrize("name", [n for n in ENTRIES if n in ORACLES and n not in ("bgm",)])
def test_batch_of_two_equals_singles_in_float64(name):
    """Two images through one ``predict_batch`` equal two single predictions; in float64, where no float32
    reordering noise is left (families with host steps in float32 still agree to rounding)."""
    import torch

    from mattecli.backends.base import Batch

    e = next(x for x in mattecli.list_models() if x.name == name)
    h, w = _size(name)
    m = _load(name)
    m.to_dtype(torch.float64)
    try:
        pairs = [_inputs(e, h, w, seed) for seed in (1, 2)]
        singles = []
        for p in pairs:
            m.reset()
            singles.append(m.predict(*p))
        m.reset()
        imgs = torch.stack([Batch.from_numpy(*p).image[0] for p in pairs])
        tris = None if pairs[0][1] is None else torch.stack([Batch.from_numpy(*p).trimap[0] for p in pairs])
        bgs = None if pairs[0][2] is None else torch.stack([Batch.from_numpy(*p).background[0] for p in pairs])
        both = m.predict_batch(Batch(imgs, tris, bgs))
        # float64 networks; host steps that the authors' pipelines run in float32 (cv2 resizes, cv2's distance
        # transform, which is not even deterministic to the last bit) leave float32 rounding: 1e-5
        if e.temporal:   # a temporal model treats a batch as consecutive frames: compare frame 0 only
            np.testing.assert_allclose(both.result(0).alpha, singles[0].alpha, rtol=0, atol=1e-5)
            return
        for i, s in enumerate(singles):
            np.testing.assert_allclose(both.result(i).alpha, s.alpha, rtol=0, atol=1e-5)
    finally:
        _MODELS.clear()


@pytest.mark.parametrize("name", [n for n in ENTRIES if n in ORACLES])
def test_converter_round_trip(name, tmp_path):
    """The oracle's official weights, converted to ours and written back in the authors' own wrapping, load into the
    same model (load-time transforms such as weight standardisation or BN folding apply once, as from the
    authors' file)."""
    import torch

    folder, opts, _ = ORACLES[name]
    m = _load(name)
    ours = m.converter.to_ours(_official(folder), m.spec)
    # RVM's default set is the authors' ONNX export: its converter writes their PyTorch file (rvm_mobilenetv3.pth)
    onnx = m.weights_set is not None and m.weights_set.format == "onnx"
    path = tmp_path / ("weights.pth" if onnx or m.weights_set is None else m.weights_set.filename)
    back = m.converter.write(ours, path, m.spec) or path
    opts = {k: (_official(v) if k == "classifier_weights" else v) for k, v in opts.items()}
    again = mattecli.load_model(name, weights=str(back), **opts)
    assert again.weights_path == str(back)
    theirs = m.net.state_dict()
    for k, v in again.net.state_dict().items():
        assert torch.equal(v, theirs[k]), k
    _MODELS.clear()


def test_classical_too_small_is_one_clear_error():
    from mattecli.errors import InputError

    img = np.zeros((2, 2, 3), np.uint8)
    tri = np.array([[0, 128], [255, 128]], np.uint8)
    with pytest.raises(InputError, match="too small for lkm with radius 10"):
        mattecli.load_model("lkm").predict(img, trimap=tri)


def test_non_finite_alpha_is_an_error_not_a_black_matte():
    import torch

    from mattecli.backends.base import Backend, Prediction
    from mattecli.errors import MatteError
    from mattecli.registry import ModelEntry

    class Overflowing(Backend):
        def predict_batch(self, batch):
            a = torch.zeros((batch.n, 1) + batch.size)
            a[..., 0, 0] = float("nan")
            return Prediction(alpha=a)

    m = Overflowing(ModelEntry(name="overflow", family="test", summary="t"))
    with pytest.raises(MatteError, match="non-finite alpha"):
        m.predict(np.zeros((4, 5, 3), np.uint8))
