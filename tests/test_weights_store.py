"""Import (sha256 + conversion), the family's converter through backends.install, our converted file, verify,
require, and safe loading."""
from __future__ import annotations

import os

import pytest
import torch

import mattecli
from mattecli.backends import install
from mattecli.backends.checkpoint import safe_torch_load
from mattecli.errors import ChecksumMismatch, ConverterError, InputError, WeightsUnavailable
from mattecli.registry import WeightSource
from mattecli.weights import cache_dir, converted, converted_name, file_sha256, integrity, require, store
from weights_helpers import (CONVERT_CALLS, TinyConverter, add_entry, cache_listing, make_entry,  # noqa: F401
                             official_npz, official_pth, online_home, private_registry, sha, tiny_wb)

W, B = tiny_wb()


@pytest.fixture
def tiny(private_registry, online_home, tmp_path):
    f = official_pth(tmp_path / "tiny_official.pth")
    e = add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", data=f.read_bytes(),
                             adapter="weights_helpers:TinyAdapter", implemented=True,
                             license="CC BY-NC-SA 4.0", code_license="MIT",
                             sources=[WeightSource("url", (tmp_path / "absent.pth").as_uri())]))
    return e, f


@pytest.fixture
def tiny_npz(private_registry, online_home, tmp_path):
    f = official_npz(tmp_path / "official.npz")
    e = add_entry(make_entry(name="tinynpz", family="tinyfam", filename="tiny.npz", fmt="npz",
                             data=f.read_bytes(), adapter="weights_helpers:TinyNpzAdapter", implemented=True,
                             license="GPL-3.0", sources=[WeightSource("url", f.as_uri())]))
    return e, f


def cache_dir_of(e):
    return cache_dir(e, e.weights[0])


def test_import_verifies_converts_and_stores(tiny, capsys):
    e, f = tiny
    p = install.import_file(e, e.weights[0], f, progress=False)
    d = cache_dir_of(e)
    assert p == d / "tiny.pth.mattecli.pt"
    assert (d / "tiny.pth").read_bytes() == f.read_bytes()  # the verified official file is kept
    assert integrity.recorded(d / "tiny.pth") == file_sha256(f)
    assert integrity.recorded(p) == file_sha256(p)  # our file's hash is recorded when written
    err = capsys.readouterr().err
    assert "CC BY-NC-SA 4.0" in err and "NON-COMMERCIAL" in err
    m = mattecli.load_model("tiny")  # from the cache, through our converted file
    assert torch.equal(m.net.weight, W) and m.weights_sha256 == file_sha256(f)
    assert require(e, e.weights[0]) == p
    assert [r.status for r in store.verify_set(e, e.weights[0])] == ["ok", "converted-ok"]


def test_import_refuses_mismatch_with_both_hashes(tiny, tmp_path):
    e, f = tiny
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": W + 1, "fc.bias": B}, other)
    with pytest.raises(ChecksumMismatch) as ei:
        install.import_file(e, e.weights[0], other, echo=None, progress=False)
    msg = str(ei.value)
    assert file_sha256(other) in msg and e.weights[0].sha256 in msg and str(other) in msg
    assert cache_listing(store.home()) == []


def test_import_without_known_hash_is_checked_by_conversion(private_registry, online_home, tmp_path):
    e = add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", sha256="",
                             adapter="weights_helpers:TinyAdapter", implemented=True))
    good = official_pth(tmp_path / "good.pth")
    msgs = []
    assert install.import_file(e, e.weights[0], good, echo=msgs.append, progress=False).is_file()
    assert any(file_sha256(good) in m and "every later load checks it" in m for m in msgs)
    store.clear(e, e.weights[0])
    not_a_ckpt = tmp_path / "junk.pth"
    not_a_ckpt.write_bytes(b"garbage" * 100)
    with pytest.raises(ConverterError, match="junk.pth"):
        install.import_file(e, e.weights[0], not_a_ckpt, echo=None, progress=False)
    assert cache_listing(online_home) == []
    with pytest.raises(InputError, match="no such file"):
        install.import_file(e, e.weights[0], tmp_path / "missing.pth", echo=None, progress=False)


def test_converter_stores_our_file_on_import_and_fetch(tiny_npz):
    e, f = tiny_npz
    CONVERT_CALLS.clear()
    p = install.import_file(e, e.weights[0], f, echo=None, progress=False)
    assert p.name == converted_name(e.weights[0]) == "tiny.npz.mattecli.pt"
    assert (p.parent / "tiny.npz").read_bytes() == f.read_bytes()  # the verified official file is kept
    assert CONVERT_CALLS == [(str(f), "tinynpz")]
    ours, meta = converted.load(p)
    assert meta["source_sha256"] == sha(f.read_bytes()) and set(ours) == {"weight", "bias"}
    assert meta["converter"] == "npz" and meta["family"] == "tinyfam"
    m = mattecli.load_model("tinynpz")  # loads our converted file; the official format is not read at run time
    assert torch.equal(m.net.bias, B) and len(CONVERT_CALLS) == 1
    assert [r.status for r in store.verify_set(e, e.weights[0])] == ["ok", "converted-ok"]

    # fetch converts too (file:// source)
    store.clear(e, e.weights[0])
    q = install.fetch(e, e.weights[0], progress=False, echo=None)
    assert q == p and converted.load(q)[1]["family"] == "tinyfam"
    assert os.path.basename(CONVERT_CALLS[-1][0]) == "tiny.npz"  # the converter sees the official file name
    # an official file without its converted twin is converted by the next fetch, with no download
    q.unlink()
    assert install.fetch(e, e.weights[0], progress=False, echo=None, offline=True) == p
    assert integrity.recorded(p) == file_sha256(p)


def test_converter_failure_refuses_import(tiny_npz, tmp_path):
    e, _ = tiny_npz
    object.__setattr__(e.weights[0], "sha256", None)
    object.__setattr__(e.weights[0], "size", None)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ConverterError, match="junk.npz"):
        install.import_file(e, e.weights[0], junk, echo=None, progress=False)
    assert cache_listing(store.home()) == []


def test_verify_reports_mismatch_unknown_missing_stale_partial(tiny_npz, tmp_path):
    e, f = tiny_npz
    ws = e.weights[0]
    assert [r.status for r in store.verify_set(e, ws)] == ["missing"]
    p = install.import_file(e, ws, f, echo=None, progress=False)
    official = p.parent / "tiny.npz"
    good = official.read_bytes()
    official.write_bytes(good + b"x")  # bit rot in the official file; our converted file is intact
    rows = store.verify_set(e, ws)
    assert [r.status for r in rows] == ["mismatch", "converted-ok"] and rows[0].bad
    assert "fetch tinynpz --force" in rows[0].detail
    (p.parent / "tiny.npz.part").write_bytes(b"abc")
    assert store.verify_set(e, ws)[-1].status == "partial"
    # an official file replaced by another one (and recorded) leaves our converted file stale
    object.__setattr__(ws, "sha256", None)
    official.write_bytes(good + b"y")
    integrity.record(official, file_sha256(official))
    rows = store.verify_set(e, ws)
    assert [r.status for r in rows[:2]] == ["ok", "converted-stale"] and rows[1].bad
    # a cached official file with no hash to check against: loads refuse it, so verify flags it
    integrity.forget(official)
    row = store.verify_set(e, ws)[0]
    assert row.status == "unknown-hash" and row.bad and "fetch tinynpz --force" in row.detail


def test_fetch_without_registry_hash_records_it(private_registry, online_home, tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"0123456789" * 100)
    e = add_entry(make_entry(name="nohash", sha256="", sources=[WeightSource("url", f.as_uri())]))
    msgs = []
    p = store.fetch(e, e.weights[0], progress=False, echo=msgs.append)
    assert any(f"recorded sha256 {sha(f.read_bytes())}" in m for m in msgs)
    assert integrity.recorded(p) == sha(f.read_bytes())
    (row,) = store.verify_set(e, e.weights[0])
    assert row.status == "ok" and "recorded when first stored" in row.detail
    p.write_bytes(b"x" + p.read_bytes()[1:])
    (row,) = store.verify_set(e, e.weights[0])
    assert row.status == "mismatch" and sha(f.read_bytes()) in row.detail


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


def test_safe_load_refuses_pickled_objects(tiny, tmp_path):
    e, _ = tiny
    marker = tmp_path / "pwned"
    p = evil_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(ConverterError) as ei:
        safe_torch_load(p)
    assert "refused" in str(ei.value) and "evil.pth" in str(ei.value)
    spec = install.spec_of(e, e.weights[0])
    with pytest.raises(ConverterError):
        TinyConverter().read(p, spec)
    with pytest.raises(ConverterError):
        converted.load(p)
    assert not marker.exists()
    # a plain state dict loads (the DataParallel prefix stripped by the default reader)
    assert set(TinyConverter().read(official_pth(tmp_path / "ok.pth"), spec)) == {"fc.weight", "fc.bias"}


def test_unsafe_checkpoint_refused_by_import_and_load_model(private_registry, online_home, tmp_path):
    add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", sha256="",
                         adapter="weights_helpers:TinyAdapter", implemented=True))
    e, _ = private_registry.resolve("tiny")
    marker = tmp_path / "pwned"
    p = evil_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(ConverterError, match="refused"):
        install.import_file(e, e.weights[0], p, echo=None, progress=False)
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
    """The real registry entry + the RVM converter: the official ONNX is verified, converted and stored."""
    from conftest import need_shared

    onnx_file = need_shared("weights", "rvm_mobilenetv3_fp32.onnx")
    from mattecli.registry import resolve

    entry, wset = resolve("rvm")
    monkeypatch.setenv("MATTECLI_HOME", str(tmp_path / "home"))
    p = install.import_file(entry, wset, onnx_file, echo=None, progress=False)
    assert p.name == "rvm_mobilenetv3_fp32.onnx.mattecli.pt"
    ours, meta = converted.load(p)
    assert meta["source_sha256"] == wset.sha256 and meta["family"] == entry.family and ours
    assert [r.status for r in store.verify_set(entry, wset)] == ["ok", "converted-ok"]
    # a cached official file is not downloaded again, even offline
    assert install.fetch(entry, wset, offline=True, echo=None, progress=False) == p


def test_import_renamed_file_or_folder_stores_only_the_converted_weights(tiny_npz, tmp_path):
    """A differently named file or an unpacked folder that the converter accepts: only our file is stored."""
    e, _ = tiny_npz
    ws = e.weights[0]
    object.__setattr__(ws, "sha256", None)
    object.__setattr__(ws, "size", None)
    other = official_npz(tmp_path / "renamed_by_browser (1).npz")
    p = install.import_file(e, ws, other, echo=None, progress=False)
    assert p.name == "tiny.npz.mattecli.pt" and not (p.parent / "tiny.npz").exists()
    assert converted.load(p)[1]["imported_from"] == other.name
    assert [r.status for r in store.verify_set(e, ws)] == ["converted-ok"]
    assert torch.equal(mattecli.load_model("tinynpz").net.weight, W)
    folder = tmp_path / "unpacked"
    folder.mkdir()
    with pytest.raises(ConverterError):  # the toy converter does not read folders: refused, cache unchanged
        install.import_file(e, ws, folder, echo=None, progress=False)
    assert p.is_file()


def test_fetch_of_unverifiable_file_that_does_not_convert_keeps_nothing(private_registry, online_home, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is no npz")
    e = add_entry(make_entry(name="tinynpz", family="tinyfam", filename="tiny.npz", fmt="npz", sha256="",
                             adapter="weights_helpers:TinyNpzAdapter", implemented=True,
                             sources=[WeightSource("url", junk.as_uri())]))
    with pytest.raises(WeightsUnavailable, match="not an npz file"):
        install.fetch(e, e.weights[0], progress=False, echo=None)
    assert cache_listing(online_home) == []
