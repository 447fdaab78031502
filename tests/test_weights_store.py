"""Import (sha256 + conversion), the convert hook and our converted file, verify, path, and safe loading."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import mattecli
from mattecli.backends.base import MatteResult, TorchBackend
from mattecli.backends.checkpoint import KeyTaker, is_ours, safe_torch_load
from mattecli.errors import ChecksumMismatch, ConverterError, InputError, WeightsUnavailable
from mattecli.registry import WeightSource
from mattecli.weights import converted_name, file_sha256, require, store
from mattecli.weights.safe_load import load_state_dict, safe_load
from weights_helpers import add_entry, cache_listing, make_entry, online_home, private_registry, sha  # noqa: F401

W = torch.arange(6, dtype=torch.float32).reshape(2, 3)
B = torch.tensor([0.5, -0.5])


class TinyAdapter(TorchBackend):
    """A y = Wx + b 'model' whose official checkpoint keys are fc.weight / fc.bias."""

    def build_net(self):
        return nn.Linear(3, 2)

    def convert(self, official):
        kt = KeyTaker(official, "tiny checkpoint")
        ours = {"weight": kt.take("fc.weight"), "bias": kt.take("fc.bias")}
        kt.finish()
        return ours

    def predict(self, image, trimap=None, background=None):
        x = torch.as_tensor(np.asarray(image, np.float32)).reshape(-1, 3)
        with torch.no_grad():
            y = self.net(x)
        return MatteResult(alpha=y.numpy())


CONVERT_CALLS = []


class TinyNpzAdapter(TinyAdapter):
    """Official format is an .npz (think: ONNX) that needs a converter only at import time."""

    @classmethod
    def convert_file(cls, path, entry=None):
        CONVERT_CALLS.append((path, entry.name if entry else None))
        try:
            with np.load(path, allow_pickle=False) as z:
                official = {k: torch.from_numpy(z[k]) for k in z.files}
        except (ValueError, OSError) as e:
            raise ConverterError(f"not an npz file ({e})") from None
        return cls.convert(None, official), {"converter": "npz"}

    def read_checkpoint(self, path):
        raise ConverterError(f"{path}: .npz needs importing: run `mattecli models import`")


def official_pth(path):
    torch.save({"state_dict": {"module.fc.weight": W, "module.fc.bias": B}}, path)
    return path


def official_npz(path):
    with open(path, "wb") as f:
        np.savez(f, **{"fc.weight": W.numpy(), "fc.bias": B.numpy()})
    return path


@pytest.fixture
def tiny(private_registry, online_home, tmp_path):
    f = official_pth(tmp_path / "tiny_official.pth")
    data = f.read_bytes()
    e = add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", data=data,
                             adapter=f"{__name__}:TinyAdapter", implemented=True,
                             license="CC BY-NC-SA 4.0", code_license="MIT",
                             sources=[WeightSource("url", (tmp_path / "absent.pth").as_uri())]))
    return e, f


@pytest.fixture
def tiny_npz(private_registry, online_home, tmp_path):
    f = official_npz(tmp_path / "official.npz")
    e = add_entry(make_entry(name="tinynpz", family="tinyfam", filename="tiny.npz", fmt="npz",
                             data=f.read_bytes(), adapter=f"{__name__}:TinyNpzAdapter", implemented=True,
                             license="GPL-3.0", sources=[WeightSource("url", f.as_uri())]))
    return e, f


def test_import_verifies_and_stores(tiny, tmp_path, capsys):
    e, f = tiny
    p = store.import_file(e, e.weights[0], f, progress=False)
    assert p == cache_dir_of(e) / "tiny.pth" and p.read_bytes() == f.read_bytes()
    err = capsys.readouterr().err
    assert "CC BY-NC-SA 4.0" in err and "NON-COMMERCIAL" in err
    # load_model uses the cache
    m = mattecli.load_model("tiny")
    assert torch.equal(m.net.weight, W) and m.weights_sha256 == file_sha256(f)
    assert require(e, e.weights[0]) == p
    rows = store.verify_set(e, e.weights[0])
    assert [r.status for r in rows] == ["ok"]


def cache_dir_of(e):
    from mattecli.weights import cache_dir

    return cache_dir(e, e.weights[0])


def test_import_refuses_mismatch_with_both_hashes(tiny, tmp_path):
    e, f = tiny
    other = official_pth(tmp_path / "other.pth")
    torch.save({"fc.weight": W + 1, "fc.bias": B}, other)
    with pytest.raises(ChecksumMismatch) as ei:
        store.import_file(e, e.weights[0], other, echo=None, progress=False)
    msg = str(ei.value)
    assert file_sha256(other) in msg and e.weights[0].sha256 in msg and str(other) in msg
    assert cache_listing(store.home()) == []


def test_import_without_known_hash_is_checked_by_conversion(private_registry, online_home, tmp_path):
    e = add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", sha256="",
                             adapter=f"{__name__}:TinyAdapter", implemented=True))
    good = official_pth(tmp_path / "good.pth")
    assert store.import_file(e, e.weights[0], good, echo=None, progress=False).is_file()
    store.clear(e, e.weights[0])
    not_a_ckpt = tmp_path / "junk.pth"
    not_a_ckpt.write_bytes(b"garbage" * 100)
    with pytest.raises(ConverterError, match="junk.pth"):
        store.import_file(e, e.weights[0], not_a_ckpt, echo=None, progress=False)
    assert cache_listing(online_home) == []
    with pytest.raises(InputError, match="no such file"):
        store.import_file(e, e.weights[0], tmp_path / "missing.pth", echo=None, progress=False)


def test_convert_hook_stores_our_file_on_import_and_fetch(tiny_npz, tmp_path):
    e, f = tiny_npz
    CONVERT_CALLS.clear()
    p = store.import_file(e, e.weights[0], f, echo=None, progress=False)
    assert p.name == converted_name(e.weights[0]) == "tiny.npz.mattecli.pt"
    assert (p.parent / "tiny.npz").read_bytes() == f.read_bytes()  # the verified official file is kept
    assert CONVERT_CALLS == [(str(f), "tinynpz")]
    obj = safe_torch_load(p)
    assert is_ours(obj) and obj["mattecli"]["source_sha256"] == sha(f.read_bytes())
    assert obj["mattecli"]["converter"] == "npz" and obj["mattecli"]["family"] == "tinyfam"
    m = mattecli.load_model("tinynpz")  # loads our converted file; no converter needed at run time
    assert torch.equal(m.net.bias, B)
    assert [r.status for r in store.verify_set(e, e.weights[0])] == ["ok", "converted-ok"]

    # fetch converts too (file:// source), and --force re-converts
    store.clear(e, e.weights[0])
    q = store.fetch(e, e.weights[0], progress=False, echo=None)
    assert q == p and is_ours(safe_torch_load(q))
    assert os.path.basename(CONVERT_CALLS[-1][0]) == "tiny.npz"  # the converter sees the official file name
    # an official file without its converted twin is converted by the next fetch, with no download
    q.unlink()
    assert store.fetch(e, e.weights[0], progress=False, echo=None, offline=True) == p


def test_convert_hook_failure_refuses_import(tiny_npz, tmp_path):
    e, _ = tiny_npz
    object.__setattr__(e.weights[0], "sha256", None)
    object.__setattr__(e.weights[0], "size", None)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ConverterError, match="junk.npz"):
        store.import_file(e, e.weights[0], junk, echo=None, progress=False)
    assert cache_listing(store.home()) == []


def test_verify_reports_mismatch_unknown_missing_stale_partial(tiny_npz, private_registry, tmp_path):
    e, f = tiny_npz
    ws = e.weights[0]
    assert [r.status for r in store.verify_set(e, ws)] == ["missing"]
    p = store.import_file(e, ws, f, echo=None, progress=False)
    official = p.parent / "tiny.npz"
    official.write_bytes(official.read_bytes() + b"x")  # bit rot
    rows = store.verify_set(e, ws)
    assert [r.status for r in rows] == ["mismatch", "converted-stale"] and all(r.bad for r in rows)
    assert "fetch tinynpz --force" in rows[0].detail
    (p.parent / "tiny.npz.part").write_bytes(b"abc")
    assert store.verify_set(e, ws)[-1].status == "partial"
    e2 = add_entry(make_entry(name="nohash", sha256="", sources=[WeightSource("url", f.as_uri())]))
    store.fetch(e2, e2.weights[0], progress=False, echo=None)
    (row,) = store.verify_set(e2, e2.weights[0])
    assert row.status == "unknown-hash" and sha(f.read_bytes()) in row.detail


def test_require_message_names_sources_and_commands(tiny):
    e, _ = tiny
    with pytest.raises(WeightsUnavailable) as ei:
        require(e, e.weights[0])
    msg = str(ei.value)
    assert "tiny.pth" in msg and "mattecli models fetch tiny" in msg and "mattecli models import tiny" in msg


# -- safe loading -------------------------------------------------------------------------------------------------
class Evil:
    """Unpickling this calls open(marker, 'w'): a file appears if the pickle is executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_checkpoint(path, marker):
    torch.save({"state_dict": {"fc.weight": W, "fc.bias": B}, "extra": Evil(marker)}, path)
    return path


def test_malicious_pickle_really_is_malicious(tmp_path):
    """Control: loading without weights_only would run the payload (so the refusal tests below mean something)."""
    marker = tmp_path / "pwned_control"
    evil_checkpoint(tmp_path / "evil.pth", marker)
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert marker.exists()


def test_safe_load_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "pwned"
    p = evil_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(ConverterError) as ei:
        safe_load(p)
    assert "refused" in str(ei.value) and "evil.pth" in str(ei.value)
    with pytest.raises(ConverterError):
        load_state_dict(p)
    assert not marker.exists()
    # a plain state dict loads
    assert set(load_state_dict(official_pth(tmp_path / "ok.pth"))) == {"module.fc.weight", "module.fc.bias"}


def test_unsafe_checkpoint_refused_by_import_and_load_model(private_registry, online_home, tmp_path):
    e = add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", sha256="",
                             adapter=f"{__name__}:TinyAdapter", implemented=True))
    marker = tmp_path / "pwned"
    p = evil_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(ConverterError, match="refused"):
        store.import_file(e, e.weights[0], p, echo=None, progress=False)
    with pytest.raises(ConverterError, match="refused"):
        mattecli.load_model("tiny", weights=str(p))
    assert not marker.exists()
    assert cache_listing(online_home) == []


def test_load_model_accepts_official_file_directly(tiny):
    _, f = tiny
    m = mattecli.load_model("tiny", weights=str(f))
    assert torch.equal(m.net.weight, W)
    assert m.weights_path == str(f)


def test_import_real_rvm_onnx_into_cache(tmp_path, monkeypatch):
    """The real registry entry + the RVM converter hook: the official ONNX is verified, converted and stored."""
    from conftest import need_shared

    onnx_file = need_shared("weights", "rvm_mobilenetv3_fp32.onnx")
    pytest.importorskip("onnx")
    from mattecli.registry import resolve

    try:
        entry, wset = resolve("rvm")
    except Exception:
        pytest.skip("rvm entry not registered")
    if store.find_convert_hook(entry) is None:
        pytest.skip("rvm converter hook not available")
    monkeypatch.setenv("MATTECLI_HOME", str(tmp_path / "home"))
    p = store.import_file(entry, wset, onnx_file, echo=None, progress=False)
    assert p.name == "rvm_mobilenetv3_fp32.onnx.mattecli.pt"
    obj = safe_torch_load(p)
    assert is_ours(obj) and obj["mattecli"]["source_sha256"] == wset.sha256
    assert [r.status for r in store.verify_set(entry, wset)] == ["ok", "converted-ok"]
    # a cached official file is not downloaded again, even offline
    assert store.fetch(entry, wset, offline=True, echo=None, progress=False) == p


def test_import_renamed_file_or_folder_stores_only_the_converted_weights(tiny_npz, tmp_path):
    """A differently named file or an unpacked folder that the converter accepts: only our file is stored."""
    e, f = tiny_npz
    ws = e.weights[0]
    object.__setattr__(ws, "sha256", None)
    object.__setattr__(ws, "size", None)
    other = official_npz(tmp_path / "renamed_by_browser (1).npz")
    p = store.import_file(e, ws, other, echo=None, progress=False)
    assert p.name == "tiny.npz.mattecli.pt" and not (p.parent / "tiny.npz").exists()
    assert safe_torch_load(p)["mattecli"]["imported_from"] == other.name
    assert [r.status for r in store.verify_set(e, ws)] == ["converted-ok"]
    assert torch.equal(mattecli.load_model("tinynpz").net.weight, W)
    folder = tmp_path / "unpacked"
    folder.mkdir()
    with pytest.raises(ConverterError):  # the toy converter does not read folders: refused, cache unchanged
        store.import_file(e, ws, folder, echo=None, progress=False)
    assert p.is_file()


def test_fetch_of_unverifiable_file_that_does_not_convert_keeps_nothing(private_registry, online_home, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is no npz")
    e = add_entry(make_entry(name="tinynpz", family="tinyfam", filename="tiny.npz", fmt="npz", sha256="",
                             adapter=f"{__name__}:TinyNpzAdapter", implemented=True,
                             sources=[WeightSource("url", junk.as_uri())]))
    with pytest.raises(WeightsUnavailable, match="not an npz file"):
        store.fetch(e, e.weights[0], progress=False, echo=None)
    assert cache_listing(online_home) == []
