"""Downloads: sha256 while streaming, .part + rename, fallback, Range resume, stalls, offline, locking."""
from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess

import pytest

from mattecli.errors import ChecksumMismatch, WeightsUnavailable
from mattecli.registry import WeightSource
from mattecli.weights import cached_path, file_sha256, integrity, store
from weights_helpers import Route, cache_listing, make_entry, online_home, server, sha  # noqa: F401

DATA = os.urandom(150_000)
STORED = ["toy/default/toy_weights.bin", "toy/default/toy_weights.bin.sha256"]


def fetch(entry, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("echo", None)
    return store.fetch(entry, entry.weights[0], **kw)


def test_http_download_verifies_and_renames(server, online_home):
    server.routes["/w.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    p = fetch(e)
    assert p == online_home / "weights" / "toy" / "default" / "toy_weights.bin"
    assert p.read_bytes() == DATA and file_sha256(p) == sha(DATA)
    assert cache_listing(online_home) == STORED  # no .part, no .part.json left; the sha256 recorded
    assert integrity.recorded(p) == sha(DATA)
    assert len(server.gets("/w.bin")) == 1
    # cached now: no second request
    assert fetch(e) == p and len(server.gets("/w.bin")) == 1


def test_flipped_byte_is_refused_and_leaves_nothing(server, online_home):
    bad = bytearray(DATA)
    bad[1234] ^= 0x01
    server.routes["/w.bin"] = Route(bytes(bad))
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    with pytest.raises(ChecksumMismatch) as ei:
        fetch(e)
    assert sha(DATA) in str(ei.value) and sha(bytes(bad)) in str(ei.value)
    assert "\n" not in str(ei.value)
    assert cache_listing(online_home) == []
    assert cached_path(e, e.weights[0]) is None


def test_size_mismatch_without_sha_is_refused(server, online_home):
    server.routes["/w.bin"] = Route(DATA[:-10])
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA, sha256="")
    with pytest.raises(ChecksumMismatch):
        fetch(e)
    assert cache_listing(online_home) == []


def test_404_falls_back_to_next_source(server, online_home):
    server.routes["/good.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/missing.bin")),
                            WeightSource("url", server.url("/good.bin"))], data=DATA)
    assert fetch(e).read_bytes() == DATA
    assert len(server.gets("/missing.bin")) == 1 and len(server.gets("/good.bin")) == 1


def test_all_sources_fail_lists_them_and_import_command(server, online_home):
    e = make_entry(sources=[WeightSource("url", server.url("/a.bin")), WeightSource("url", server.url("/b.bin"))],
                   data=DATA)
    with pytest.raises(WeightsUnavailable) as ei:
        fetch(e)
    msg = str(ei.value)
    assert "/a.bin: HTTP 404" in msg and "/b.bin: HTTP 404" in msg
    assert "mattecli models import toy" in msg and "\n" not in msg
    assert cache_listing(online_home) == []


def test_stalled_connection_times_out_then_falls_back_and_resumes(server, online_home):
    server.routes["/stall.bin"] = Route(DATA, stall_after=40_960)
    server.routes["/good.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/stall.bin")),
                            WeightSource("url", server.url("/good.bin"))], data=DATA)
    p = fetch(e, timeout=0.5)
    assert p.read_bytes() == DATA
    # the second source resumed the verified-later prefix with a Range request
    (path, rng), = server.gets("/good.bin")
    assert rng == "bytes=40960-"
    assert server.bytes_sent["/good.bin"] == len(DATA) - 40960
    assert cache_listing(online_home) == STORED


def test_stall_keeps_part_for_resume_when_nothing_else_works(server, online_home):
    server.routes["/stall.bin"] = Route(DATA, stall_after=8192)
    e = make_entry(sources=[WeightSource("url", server.url("/stall.bin"))], data=DATA)
    with pytest.raises(WeightsUnavailable) as ei:
        fetch(e, timeout=0.3)
    assert "stalled" in str(ei.value)
    assert cached_path(e, e.weights[0]) is None
    part = online_home / "weights/toy/default/toy_weights.bin.part"
    assert part.stat().st_size == 8192
    # the server comes back: the next fetch asks only for the rest
    server.routes["/stall.bin"] = Route(DATA)
    assert fetch(e).read_bytes() == DATA
    assert server.hits[-1] == ("/stall.bin", "bytes=8192-")
    assert cache_listing(online_home) == STORED


def test_resume_partial_part_with_range(server, online_home):
    server.routes["/w.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    d = online_home / "weights/toy/default"
    d.mkdir(parents=True)
    (d / "toy_weights.bin.part").write_bytes(DATA[:100_000])
    assert fetch(e).read_bytes() == DATA
    assert server.gets("/w.bin") == [("/w.bin", "bytes=100000-")]
    assert server.bytes_sent["/w.bin"] == len(DATA) - 100_000


def test_resume_with_server_ignoring_range_restarts(server, online_home):
    server.routes["/w.bin"] = Route(DATA, ranges=False)
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    d = online_home / "weights/toy/default"
    d.mkdir(parents=True)
    (d / "toy_weights.bin.part").write_bytes(DATA[:5000])
    assert fetch(e).read_bytes() == DATA
    assert server.bytes_sent["/w.bin"] == len(DATA)


def test_corrupt_part_is_discarded_and_downloaded_again(server, online_home):
    server.routes["/w.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    d = online_home / "weights/toy/default"
    d.mkdir(parents=True)
    (d / "toy_weights.bin.part").write_bytes(b"\0" * 5000)  # wrong prefix
    assert fetch(e).read_bytes() == DATA
    assert server.gets("/w.bin") == [("/w.bin", "bytes=5000-"), ("/w.bin", None)]


def test_complete_part_is_finished_without_new_bytes(server, online_home):
    server.routes["/w.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    d = online_home / "weights/toy/default"
    d.mkdir(parents=True)
    (d / "toy_weights.bin.part").write_bytes(DATA)
    assert fetch(e).read_bytes() == DATA
    assert server.bytes_sent.get("/w.bin", 0) == 0  # 416 -> the .part was already complete


def test_html_page_instead_of_file_is_refused(server, online_home):
    server.routes["/page"] = Route(b"<html>sign in</html>", ctype="text/html; charset=utf-8")
    e = make_entry(sources=[WeightSource("url", server.url("/page"))], data=DATA)
    with pytest.raises(WeightsUnavailable, match="web page"):
        fetch(e)
    assert cache_listing(online_home) == []


def test_file_url_and_path_sources(tmp_path, online_home):
    src = tmp_path / "official.bin"
    src.write_bytes(DATA)
    e = make_entry(sources=[WeightSource("url", src.as_uri())], data=DATA)
    assert fetch(e).read_bytes() == DATA
    e2 = make_entry(name="toy2", sources=[WeightSource("path", str(tmp_path / "nope.bin")),
                                          WeightSource("path", str(src))], data=DATA)
    assert fetch(e2).read_bytes() == DATA


def test_force_downloads_again(server, online_home):
    server.routes["/w.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    p = fetch(e)
    p.write_bytes(b"tampered")
    assert fetch(e, force=True).read_bytes() == DATA
    assert len(server.gets("/w.bin")) == 2


@pytest.fixture
def no_sockets(monkeypatch):
    calls = []

    def refuse(self, *a, **k):
        calls.append(a)
        raise AssertionError("a socket was opened in offline mode")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, *a))
    real_run = subprocess.run

    def no_pip(cmd, *a, **k):
        calls.append(cmd)
        raise AssertionError("pip was run in offline mode")

    monkeypatch.setattr(subprocess, "run", no_pip)
    yield calls
    monkeypatch.setattr(subprocess, "run", real_run)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_never_opens_a_socket(tmp_path, monkeypatch, no_sockets, how):
    monkeypatch.setenv("MATTECLI_HOME", str(tmp_path / "home"))
    if how == "env":
        monkeypatch.setenv("MATTECLI_OFFLINE", "1")
    else:
        monkeypatch.delenv("MATTECLI_OFFLINE", raising=False)
    e = make_entry(sources=[WeightSource("url", "http://127.0.0.1:9/w.bin"),
                            WeightSource("wheel", "somepkg==1.0", member="somepkg/w.bin"),
                            WeightSource("url", "https://example.org/w.bin")], data=DATA)
    with pytest.raises(WeightsUnavailable) as ei:
        fetch(e, offline=True if how == "flag" else None)
    assert no_sockets == []
    assert "offline" in str(ei.value) and "mattecli models import toy" in str(ei.value)
    # local sources still work offline; a cached file is returned without any network
    src = tmp_path / "w.bin"
    src.write_bytes(DATA)
    e2 = make_entry(name="toy2", sources=[WeightSource("url", "http://127.0.0.1:9/w.bin"),
                                          WeightSource("url", src.as_uri())], data=DATA)
    p = fetch(e2, offline=True if how == "flag" else None)
    assert p.read_bytes() == DATA
    assert fetch(e2, offline=True) == p
    assert no_sockets == []


def test_manual_source_prints_instructions(online_home, capsys):
    e = make_entry(sources=[WeightSource("manual", "https://drive.google.com/drive/folders/XYZ",
                                         note="Google Drive folder of the authors")], data=DATA)
    with pytest.raises(WeightsUnavailable) as ei:
        store.fetch(e, e.weights[0], progress=False)
    msg = str(ei.value)
    assert "drive.google.com/drive/folders/XYZ" in msg
    assert "mattecli models import toy /path/to/toy_weights.bin" in msg
    text = store.manual_instructions(e, e.weights[0])
    assert "by hand" in text and "mattecli models import toy /path/to/toy_weights.bin" in text
    assert cache_listing(online_home) == []


def _child_fetch(entry, q):
    msgs = []
    try:
        p = store.fetch(entry, entry.weights[0], progress=False, echo=msgs.append)
        q.put((str(p), any("another mattecli process" in m for m in msgs)))
    except BaseException as e:  # pragma: no cover - reported to the parent
        q.put((f"ERROR {e!r}", False))


def test_two_processes_download_once(server, online_home):
    server.routes["/slow.bin"] = Route(DATA, chunk_delay=0.04)  # ~1.5 s per download: the two fetches overlap
    e = make_entry(sources=[WeightSource("url", server.url("/slow.bin"))], data=DATA)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child_fetch, args=(e, q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    target = str(online_home / "weights/toy/default/toy_weights.bin")
    assert [r[0] for r in results] == [target, target]
    assert sorted(r[1] for r in results) == [False, True]  # one downloaded, the other waited for it
    assert len(server.gets("/slow.bin")) == 1
    assert cache_listing(online_home) == STORED


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        # root ignores permissions: point the cache below a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        monkeypatch.setenv("MATTECLI_HOME", str(blocker / "home"))
    else:  # pragma: no cover
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        monkeypatch.setenv("MATTECLI_HOME", str(ro / "home"))
    monkeypatch.delenv("MATTECLI_OFFLINE", raising=False)
    src = tmp_path / "w.bin"
    src.write_bytes(DATA)
    e = make_entry(sources=[WeightSource("url", src.as_uri())], data=DATA)
    with pytest.raises(WeightsUnavailable, match="MATTECLI_HOME at a writable folder"):
        fetch(e)


def test_lock_waits_then_times_out(tmp_path):
    """filelock: a second holder (even in this process) waits, says so once, and honours its timeout."""
    from mattecli.weights.lock import file_lock

    path = tmp_path / "locks" / "x.lock"
    waited = []
    with file_lock(path):
        with pytest.raises(TimeoutError, match="still locked"):
            with file_lock(path, on_wait=lambda: waited.append(1), timeout=0.2):
                pass  # pragma: no cover
    assert waited == [1]
    with file_lock(path, on_wait=lambda: waited.append(2), timeout=0.2):  # free again: no wait
        pass
    assert waited == [1]


class _Tty:
    """A terminal-like stderr that records what is drawn on it."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_download_progress_is_the_tools_bar_in_bytes(server, online_home, monkeypatch):
    import sys

    server.routes["/w.bin"] = Route(DATA)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setenv("NO_COLOR", "1")  # the plain one-line form of mattecli.progress.Progress
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    assert fetch(e, progress=True).read_bytes() == DATA
    assert "\rtoy_weights.bin 0.1 MB/0.1 MB" in tty.text and "MB/s" in tty.text
    tty.text = ""
    fetch(e, progress=False, force=True)
    assert tty.text == ""


def _age(p, seconds=60):
    t = os.stat(p).st_mtime - seconds
    os.utime(p, (t, t))


def test_litter_of_a_killed_run_is_swept_by_the_next_fetch(server, online_home):
    """Hidden temporaries of atomic writes, stale download .part files and gdown's temporary files, all older than
    the lock: the next fetch removes them (gdown's newest becomes the .part it resumes)."""
    server.routes["/w.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("url", server.url("/w.bin"))], data=DATA)
    d = online_home / "weights/toy/default"
    (d / ".convert-x1y2").mkdir(parents=True)
    (d / ".convert-x1y2" / "toy_weights.bin").write_bytes(b"half")
    litter = [d / ".toy_weights.bin.mattecli.pt.4242.tmp", d / ".toy_weights.bin.sha256.4242.tmp",
              d / ".toy_weights.bin.import-4242.part", d / "renamed_in_the_registry.bin.part",
              d / "renamed_in_the_registry.bin.part.json", d / "toy_weights.bin.partOLDER123.part"]
    for p in litter:
        p.write_bytes(b"x" * 10)
    (d / "toy_weights.bin.partNEWER123.part").write_bytes(DATA[:60_000])  # gdown's, newest: resumed
    for p in [*litter, d / ".convert-x1y2"]:
        _age(p, 120)
    _age(d / "toy_weights.bin.partNEWER123.part", 30)
    assert fetch(e).read_bytes() == DATA
    assert server.gets("/w.bin") == [("/w.bin", "bytes=60000-")]
    assert cache_listing(online_home) == STORED
    assert sorted(p.name for p in d.iterdir()) == ["toy_weights.bin", "toy_weights.bin.sha256"]


def test_tidy_keeps_what_is_newer_than_the_lock_and_the_resumable_part(online_home):
    import time

    from mattecli.weights.cache_files import tidy

    e = make_entry(data=DATA)
    d = online_home / "weights/toy/default"
    d.mkdir(parents=True)
    old, new = d / ".toy_weights.bin.1.tmp", d / ".toy_weights.bin.2.tmp"
    part, orphan = d / "toy_weights.bin.part", d / "other.part.json"
    for p in (old, new, part, orphan):
        p.write_bytes(b"x")
    for p in (old, part, orphan):
        _age(p)
    since = time.time() - 10
    assert sorted(tidy(e, e.weights[0], since)) == [".toy_weights.bin.1.tmp", "other.part.json"]
    assert new.exists() and part.exists()


def test_models_verify_still_reports_an_interrupted_download(server, online_home):
    server.routes["/stall.bin"] = Route(DATA, stall_after=8192)
    e = make_entry(sources=[WeightSource("url", server.url("/stall.bin"))], data=DATA)
    with pytest.raises(WeightsUnavailable, match="on a slow connection with --timeout SECONDS"):
        fetch(e, timeout=0.3)
    rows = store.verify_set(e, e.weights[0])
    assert [r.status for r in rows] == ["missing", "partial"]
