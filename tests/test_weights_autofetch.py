"""Weights arrive by themselves: a registered model whose weights are missing is fetched on its first load (licence
line printed), from the loopback server; never with MATTECLI_OFFLINE=1 or MATTECLI_NO_FETCH=1 (the error names the
fetch command). A file without a registry sha256 has its hash printed and recorded, and every later load checks it."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import mattecli
from mattecli.errors import ChecksumMismatch, WeightsUnavailable
from mattecli.registry import WeightSource
from mattecli.weights import integrity
from weights_helpers import (Route, add_entry, make_entry, official_pth, online_home, private_registry,  # noqa: F401
                             server, sha)


@pytest.fixture
def tiny_online(private_registry, online_home, server, tmp_path, monkeypatch):
    """The tiny model (weights_helpers.TinyAdapter) registered with one loopback source; its official bytes."""
    monkeypatch.setenv("MATTECLI_NO_FETCH", "")  # recorded, so what a verb's --no-fetch sets is undone afterwards
    data = official_pth(tmp_path / "tiny.pth").read_bytes()
    server.routes["/tiny.pth"] = Route(data)
    return data


def _register(server, data, kind="url", sha256=None):
    return add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", data=data,
                                sha256=sha256, adapter="weights_helpers:TinyAdapter", implemented=True,
                                license="CC BY-NC 4.0", code_license="MIT",
                                sources=[WeightSource(kind, server.url("/tiny.pth"))]))


@pytest.mark.parametrize("kind", ["url", "gdrive"])
def test_first_load_fetches_the_missing_weights(tiny_online, server, online_home, capsys, kind):
    _register(server, tiny_online, kind=kind)
    m = mattecli.load_model("tiny")
    assert m.net.weight.shape == (2, 3)
    err = capsys.readouterr().err
    assert "weights for tiny are not cached: fetching them now (--no-fetch prevents this)" in err
    assert "licence of the tiny weights (tiny.pth): CC BY-NC 4.0 -- NON-COMMERCIAL" in err
    d = online_home / "weights" / "tiny" / "default"
    assert (d / "tiny.pth").read_bytes() == tiny_online and (d / "tiny.pth.mattecli.pt").is_file()
    hits = len(server.gets("/tiny.pth"))
    assert hits >= 1
    mattecli.load_model("tiny")  # cached now: no network, no licence line again
    assert len(server.gets("/tiny.pth")) == hits
    assert "fetching them now" not in capsys.readouterr().err


@pytest.mark.parametrize("env, words", [("MATTECLI_OFFLINE", "--offline / MATTECLI_OFFLINE=1"),
                                        ("MATTECLI_NO_FETCH", "--no-fetch / MATTECLI_NO_FETCH=1")])
def test_never_fetched_offline_or_with_no_fetch(tiny_online, server, online_home, monkeypatch, env, words):
    _register(server, tiny_online)
    monkeypatch.setenv(env, "1")
    with pytest.raises(WeightsUnavailable) as ei:
        mattecli.load_model("tiny")
    msg = str(ei.value)
    assert "run `mattecli models fetch tiny`" in msg and words in msg and "\n" not in msg
    assert server.hits == [] and not (online_home / "weights").exists()


def test_unknown_hash_is_printed_recorded_and_checked_on_every_load(tiny_online, server, online_home, capsys):
    _register(server, tiny_online, sha256="")
    digest = sha(tiny_online)
    mattecli.load_model("tiny")
    assert f"recorded sha256 {digest}" in capsys.readouterr().err
    d = online_home / "weights" / "tiny" / "default"
    official, conv = d / "tiny.pth", d / "tiny.pth.mattecli.pt"
    assert integrity.recorded(official) == digest and integrity.recorded(conv) is not None
    # our converted file is checked against its recorded hash ...
    conv.write_bytes(conv.read_bytes() + b"\0")
    with pytest.raises(ChecksumMismatch, match="mattecli models fetch tiny --force"):
        mattecli.load_model("tiny")
    # ... and so is the official file (loaded when the converted one is gone)
    conv.unlink()
    assert mattecli.load_model("tiny").weights_sha256 == digest
    official.write_bytes(official.read_bytes()[:-1] + b"\1")
    with pytest.raises(ChecksumMismatch) as ei:
        mattecli.load_model("tiny")
    assert digest in str(ei.value) and str(official) in str(ei.value)
    assert len(server.gets("/tiny.pth")) == 1  # a damaged file is never fetched over silently


def test_verb_fetches_or_names_the_command(tiny_online, server, online_home, tmp_path, monkeypatch):
    import cv2

    from mattecli.cli.app import app

    _register(server, tiny_online)
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.full((16, 16, 3), 128, np.uint8))
    r = CliRunner().invoke(app, ["matte", str(img), "--model", "tiny", "--no-fetch", "-o", str(tmp_path / "o1")])
    assert r.exit_code == 1, r.output
    assert "mattecli models fetch tiny" in r.stderr and "--no-fetch" in r.stderr
    assert server.hits == []
    monkeypatch.setenv("MATTECLI_NO_FETCH", "")  # --no-fetch set it for the rest of that process
    r = CliRunner().invoke(app, ["matte", str(img), "--model", "tiny", "-o", str(tmp_path / "o2")])
    assert r.exit_code == 0, r.output
    assert "licence of the tiny weights" in r.stderr and "NON-COMMERCIAL" in r.stderr
    assert (online_home / "weights" / "tiny" / "default" / "tiny.pth").is_file()
