"""Google Drive sources through gdown: at gdown's boundary (its calls replaced: ids, folder members, errors) and for
real against the loopback server (gdown downloading a local URL: progress, timeout, resume, web pages refused)."""
from __future__ import annotations

import os
import sys

import gdown
from gdown.download import GoogleDriveFileToDownload
import pytest
from typer.testing import CliRunner

from mattecli.errors import ChecksumMismatch, WeightsUnavailable
from mattecli.registry import WeightSource, resolve
from mattecli.weights import integrity, store
from mattecli.weights.download import SourceFailed
from mattecli.weights.gdrive import fetch_gdrive, match_member
from weights_helpers import Route, cache_listing, make_entry, online_home, server, sha  # noqa: F401

DATA = os.urandom(90_000)
STORED = ["toy/default/toy_weights.bin", "toy/default/toy_weights.bin.sha256"]
FileItem = GoogleDriveFileToDownload


def fetch(entry, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("echo", None)
    return store.fetch(entry, entry.weights[0], **kw)


class FakeGdown:
    """Stands in for gdown.download / gdown.download_folder; records every call."""

    def __init__(self, monkeypatch, data=DATA, listing=(), error=None):
        self.data, self.listing, self.error = data, list(listing), error
        self.calls, self.folders = [], []
        monkeypatch.setattr(gdown, "download", self.download)
        monkeypatch.setattr(gdown, "download_folder", self.download_folder)

    def download(self, **kw):
        self.calls.append(kw)
        if self.error is not None:
            raise self.error
        tmp = kw["output"] + "abcdefgh.part"  # like gdown: a temporary file, renamed when complete
        with open(tmp, "wb") as f:
            for i in range(0, len(self.data), 30_000):
                piece = self.data[i:i + 30_000]
                f.write(piece)
                kw["hasher"].update(piece)
                kw["progress"](i + len(piece), len(self.data))
        os.replace(tmp, kw["output"])
        return kw["output"]

    def download_folder(self, **kw):
        self.folders.append(kw)
        return [FileItem(id=i, path=p, local_path=p) for i, p in self.listing]


def test_file_id_is_passed_to_gdown_with_timeout_and_no_cookies(online_home, monkeypatch):
    fake = FakeGdown(monkeypatch)
    monkeypatch.delenv("MATTECLI_GDRIVE_COOKIES", raising=False)
    e = make_entry(sources=[WeightSource("gdrive", "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1")], data=DATA)
    p = fetch(e, timeout=7)
    assert p.read_bytes() == DATA and integrity.recorded(p) == sha(DATA)
    (kw,) = fake.calls
    assert kw["id"] == "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1" and "url" not in kw
    assert kw["timeout"] == 7 and kw["quiet"] is True and kw["use_cookies"] is False and kw["resume"] is False
    assert kw["output"].endswith("toy_weights.bin.part")
    assert cache_listing(online_home) == STORED and fake.folders == []
    # a Drive file link in the registry works the same
    fake.calls.clear()
    e2 = make_entry(name="toy2", sources=[WeightSource("gdrive", "https://drive.google.com/file/d/1AbCdEfGhIjKlMnOp/"
                                                                 "view?usp=sharing")], data=DATA)
    fetch(e2)
    assert fake.calls[0]["id"] == "1AbCdEfGhIjKlMnOp"


def test_cookies_file_only_when_asked(online_home, monkeypatch, tmp_path):
    fake = FakeGdown(monkeypatch)
    monkeypatch.setenv("MATTECLI_GDRIVE_COOKIES", str(tmp_path / "cookies.txt"))
    e = make_entry(sources=[WeightSource("gdrive", "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1")], data=DATA)
    fetch(e)
    assert fake.calls[0]["use_cookies"] is True and fake.calls[0]["cookies_file"] == str(tmp_path / "cookies.txt")


LISTING = [("idA", "PyTorch/pytorch_resnet50.pth"), ("idB", "PyTorch/pytorch_resnet101.pth"),
           ("idC", "TorchScript/pytorch_resnet50.pth"), ("idD", "Models/real-fixed-cam/netG_epoch_12.pth"),
           ("idE", "Models/real-hand-held/netG_epoch_12.pth"), ("idF", "Models/syn-comp-adobe/netG_epoch_44.pth"),
           ("idG", "modnet_webcam_portrait_matting.ckpt")]


@pytest.mark.parametrize("member, want", [("PyTorch/pytorch_resnet50.pth", "idA"), ("pytorch_resnet101.pth", "idB"),
                                          ("real-hand-held/netG_epoch_12.pth", "idE"),
                                          ("syn-comp-adobe/netG_epoch_*.pth", "idF"),
                                          ("modnet_webcam_portrait_matting.ckpt", "idG")])
def test_folder_member_is_found_by_name_path_or_glob(member, want):
    assert match_member(LISTING, member, "folder X") == want


def test_folder_member_ambiguous_or_missing_is_refused():
    with pytest.raises(SourceFailed, match="matches several files.*PyTorch/pytorch_resnet50.pth"):
        match_member(LISTING, "pytorch_resnet50.pth", "folder X")
    with pytest.raises(SourceFailed, match="matches several files"):
        match_member(LISTING, "netG_epoch_12.pth", "folder X")
    with pytest.raises(SourceFailed, match="no file nope.pth in the folder .*modnet_webcam"):
        match_member(LISTING, "nope.pth", "folder X")


def test_folder_source_lists_the_folder_then_downloads_the_member(online_home, monkeypatch):
    fake = FakeGdown(monkeypatch, listing=LISTING)
    e = make_entry(sources=[WeightSource("gdrive", "1cbetlrKREitIgjnIikG1HdM4x72FtgBh",
                                         member="PyTorch/pytorch_resnet101.pth")], data=DATA)
    assert fetch(e, timeout=5).read_bytes() == DATA
    (folder,) = fake.folders
    assert folder["id"] == "1cbetlrKREitIgjnIikG1HdM4x72FtgBh" and folder["skip_download"] is True
    assert folder["timeout"] == 5 and folder["quiet"] is True
    assert fake.calls[0]["id"] == "idB"


def test_quota_page_is_one_line_and_says_what_to_do(online_home, monkeypatch):
    err = gdown.exceptions.FileURLRetrievalError(
        "Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded this file recently. Please try "
        "accessing the file again later.\n\nYou may still be able to access the file from the browser:\n\n\t"
        "https://drive.google.com/uc?id=1T_o\n\nbut Gdown can't. Please check connections and permissions.")
    FakeGdown(monkeypatch, error=err)
    e = make_entry(sources=[WeightSource("gdrive", "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1"),
                            WeightSource("manual", "https://drive.google.com/file/d/1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1/"
                                                   "view", note="the authors' README")], data=DATA)
    with pytest.raises(WeightsUnavailable) as ei:
        fetch(e)
    msg = str(ei.value)
    assert "\n" not in msg and "quota" in msg and "try again later" in msg
    assert "mattecli models import toy /path/to/toy_weights.bin" in msg and "the authors' README" in msg
    assert cache_listing(online_home) == []


@pytest.mark.parametrize("error, words", [
    (gdown.exceptions.FileURLRetrievalError("Cannot retrieve the public link of the file. You may need to change "
                                            "the permission to 'Anyone with the link'"), "no longer shared"),
    (gdown.exceptions.DownloadError("Failed to download:\n- x"), "Failed to download: - x"),
])
def test_gdown_errors_become_one_line_source_failures(online_home, monkeypatch, tmp_path, error, words):
    FakeGdown(monkeypatch, error=error)
    part = tmp_path / "w.part"
    with pytest.raises(SourceFailed) as ei:
        fetch_gdrive(WeightSource("gdrive", "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1"), part, progress=False)
    assert "\n" not in str(ei.value) and words in str(ei.value) and not ei.value.partial
    assert list(tmp_path.iterdir()) == []


def test_web_page_instead_of_the_file_is_refused(online_home, monkeypatch):
    FakeGdown(monkeypatch, data=b"\n  <!DOCTYPE html><html><title>Google Drive - Virus scan warning</title></html>")
    e = make_entry(sources=[WeightSource("gdrive", "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1")], data=DATA, sha256="",
                   size=False)
    with pytest.raises(WeightsUnavailable, match="sent a web page"):
        fetch(e)
    assert cache_listing(online_home) == []


def test_more_bytes_than_the_registry_says_stops_the_transfer(online_home, monkeypatch):
    fake = FakeGdown(monkeypatch, data=DATA * 3)
    e = make_entry(sources=[WeightSource("gdrive", "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1")], data=DATA, sha256="")
    with pytest.raises(WeightsUnavailable, match=f"more than the expected {len(DATA)} bytes"):
        fetch(e)
    assert len(fake.calls) == 1 and cache_listing(online_home) == []


def test_without_gdown_the_message_says_how_to_get_it(online_home, monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", None)
    e = make_entry(sources=[WeightSource("gdrive", "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1")], data=DATA)
    with pytest.raises(WeightsUnavailable, match="need the Python package gdown: pip install gdown"):
        fetch(e)


# -- gdown for real, against the loopback server ------------------------------------------------------------------
BIG = os.urandom(1_500_000)  # gdown writes in 512 KiB pieces: a stall after 600 KB keeps 512 KiB


def test_loopback_download_verifies_and_shows_the_tools_bar(server, online_home, monkeypatch):
    server.routes["/w.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("gdrive", server.url("/w.bin"))], data=DATA)

    class Tty:
        text = ""

        def write(self, s):
            Tty.text += s
            return len(s)

        def flush(self):
            pass

        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert fetch(e, progress=True).read_bytes() == DATA
    assert "toy_weights.bin" in Tty.text and "MB" in Tty.text
    assert cache_listing(online_home) == STORED


def test_loopback_stall_times_out_keeps_the_part_and_resumes(server, online_home):
    server.routes["/big.bin"] = Route(BIG, stall_after=600_000)
    e = make_entry(sources=[WeightSource("gdrive", server.url("/big.bin"))], data=BIG)
    with pytest.raises(WeightsUnavailable) as ei:
        fetch(e, timeout=0.5)
    msg = str(ei.value)
    assert "no data for 0.5 s" in msg and "--timeout SECONDS" in msg and "\n" not in msg
    part = online_home / "weights/toy/default/toy_weights.bin.part"
    assert part.stat().st_size == 512 * 1024
    assert cache_listing(online_home) == ["toy/default/toy_weights.bin.part", "toy/default/toy_weights.bin.part.json"]
    server.routes["/big.bin"] = Route(BIG)
    assert fetch(e, timeout=5).read_bytes() == BIG
    assert ("/big.bin", f"bytes={512 * 1024}-") in server.hits
    assert cache_listing(online_home) == ["toy/default/toy_weights.bin", "toy/default/toy_weights.bin.sha256"]


def test_loopback_resume_refused_by_the_server_starts_over(server, online_home):
    server.routes["/big.bin"] = Route(BIG, ranges=False)
    e = make_entry(sources=[WeightSource("gdrive", server.url("/big.bin"))], data=BIG)
    d = online_home / "weights/toy/default"
    d.mkdir(parents=True)
    (d / "toy_weights.bin.part").write_bytes(BIG[:5000])
    assert fetch(e, timeout=5).read_bytes() == BIG


def test_loopback_errors_fall_back_to_the_next_source(server, online_home):
    server.routes["/page"] = Route(b"<html><body>Quota exceeded</body></html>", ctype="text/html")
    server.routes["/good.bin"] = Route(DATA)
    e = make_entry(sources=[WeightSource("gdrive", server.url("/missing.bin")), WeightSource("gdrive", server.url("/page")),
                            WeightSource("gdrive", server.url("/good.bin"))], data=DATA)
    msgs = []
    assert fetch(e, echo=msgs.append).read_bytes() == DATA
    text = "\n".join(msgs)
    assert "/missing.bin: HTTP 404" in text and "/page: Google Drive sent a web page" in text
    bad = make_entry(name="bad", sources=[WeightSource("gdrive", server.url("/good.bin"))], data=DATA + b"!")
    with pytest.raises(ChecksumMismatch):
        fetch(bad)


def _child(entry):
    store.fetch(entry, entry.weights[0], progress=False, echo=None, timeout=10)


def test_a_killed_drive_download_is_resumed_and_leaves_no_litter(server, online_home):
    """SIGKILL while gdown writes its temporary file: the next fetch adopts it as the .part, resumes it with a Range
    request, and the folder ends with the verified file only."""
    import multiprocessing
    import signal
    import time

    server.routes["/big.bin"] = Route(BIG, chunk_delay=0.004)  # ~1.5 s for the whole file
    e = make_entry(sources=[WeightSource("gdrive", server.url("/big.bin"))], data=BIG)
    d = online_home / "weights/toy/default"
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(e,))
    proc.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tmp = [p for p in d.glob("toy_weights.bin.part*.part")] if d.is_dir() else []
        if tmp and tmp[0].stat().st_size >= 512 * 1024:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    assert [p.name for p in d.glob("toy_weights.bin.part?*.part")], sorted(p.name for p in d.iterdir())
    server.routes["/big.bin"] = Route(BIG)
    assert fetch(e, timeout=5).read_bytes() == BIG
    ranges = [r for _, r in server.gets("/big.bin") if r]
    assert ranges and int(ranges[-1][6:-1]) >= 512 * 1024
    assert sorted(p.name for p in d.iterdir()) == ["toy_weights.bin", "toy_weights.bin.sha256"]


# -- the registry's Drive sources ---------------------------------------------------------------------------------
DRIVE = {  # name -> (location, member) of its first source
    "fba": ("1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1", None),
    "gca": ("1GrFrV7guwOQB3N1-bx1iByw_LJNYnIw_", None),
    "gca.dist": ("1ti_a46lKEH2Hk2fAB11BbyKfYj0rxNK0", None),
    "sim": ("1kmhQtO-6wXTxgHtQCLRj3xPOEtXyzTXC", None),
    "sim.adobe": ("1uUIhzBKyTRfu0Ylhm0O9pyV9TayPaODt", None),
    "sim.classifier": ("12JCGqDylBXJpgDhj4hg_JZYdbHlX8TKe", None),
    "modnet": ("1umYmlCulvIFNaqPjwod1SayFmSRHziyR", "modnet_photographic_portrait_matting.ckpt"),
    "modnet.webcam": ("1umYmlCulvIFNaqPjwod1SayFmSRHziyR", "modnet_webcam_portrait_matting.ckpt"),
    "gfm": ("1AdtoIdYTLsjXfVe_a50tin0cFwZMSz93", None),
    "gfm.d121-rim": ("1aMY5tJQ79IB-0NJ9WzcTu6ZOQTowiFWv", None),
    "bgmv2": ("1cbetlrKREitIgjnIikG1HdM4x72FtgBh", "PyTorch/pytorch_resnet50.pth"),
    "bgmv2.mobilenetv2": ("1cbetlrKREitIgjnIikG1HdM4x72FtgBh", "PyTorch/pytorch_mobilenetv2.pth"),
    "bgm": ("1WLDBC_Q-cA72QC8bB-Rdj53UB2vSPnXv", "real-fixed-cam/netG_epoch_12.pth"),
    "bgm.real-hand-held": ("1WLDBC_Q-cA72QC8bB-Rdj53UB2vSPnXv", "real-hand-held/netG_epoch_12.pth"),
    "bgm.syn-comp-adobe": ("1WLDBC_Q-cA72QC8bB-Rdj53UB2vSPnXv", "syn-comp-adobe/netG_epoch_*.pth"),
}


@pytest.mark.parametrize("name", sorted(DRIVE))
def test_registry_drive_sources_come_first_and_manual_last(name):
    entry, wset = resolve(name)
    first, last = wset.sources[0], wset.sources[-1]
    assert (first.kind, first.location, first.member) == ("gdrive", *DRIVE[name])
    assert last.kind == "manual"


def test_every_set_of_these_families_has_a_drive_source():
    from mattecli.registry import list_models

    fams = {"fba", "gca", "sim", "modnet", "gfm", "bgmv2", "bgm"}
    sets = [(e, w) for e in list_models() if e.family in fams for w in e.weights]
    assert len(sets) == 1 + 2 + 3 + 2 + 7 + 3 + 3
    for e, w in sets:
        kinds = [s.kind for s in w.sources]
        assert kinds[0] == "gdrive" and kinds[-1] == "manual", (e.name, w.tag, kinds)


def test_models_fetch_fba_goes_through_gdown_and_fails_cleanly_on_a_bad_file(online_home, monkeypatch):
    """`mattecli models fetch fba`: licence flagged, gdown asked for FBA's Drive id; a file that is no FBA checkpoint
    (there is no sha256 to check) does not convert: exit 1, one line, nothing kept."""
    from mattecli.cli.app import app

    fake = FakeGdown(monkeypatch, data=b"this is no checkpoint" * 100)
    r = CliRunner().invoke(app, ["models", "fetch", "fba", "--timeout", "9"])
    assert r.exit_code == 1, r.output
    assert fake.calls[0]["id"] == "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1" and fake.calls[0]["timeout"] == 9
    assert "NON-COMMERCIAL" in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mattecli: error: could not fetch the weights of fba (FBA.pth")
    assert "mattecli models import fba /path/to/FBA.pth" in last and "drive.google.com" in last
    assert r.stdout == "" and cache_listing(online_home) == []
