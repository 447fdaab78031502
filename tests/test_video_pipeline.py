"""Video pipeline: batching with carried state, OOM back-off, smoothing, auxiliary inputs, interruption, CLI."""
from __future__ import annotations

import os

import numpy as np
import pytest

import video_helpers as vh
from video_helpers import (CrashBackend, FakeImage, FakeTemporal, OOMBackend, make_clip, read_video,
                           register_fakes, synth_frame)

from mattecli.errors import MatteError
from mattecli.imaging.colour import colour_or_none
from mattecli.video.encode_plan import plan_output
from mattecli.video.job import VideoJob
from mattecli.video.pipeline import run_video
from mattecli.video.reader import VideoSource
from mattecli.video.smoothing import AlphaSmoother, parse_smooth

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    p = d / "src.mp4"
    make_clip(p, n=14)
    return p


def _alpha_seq(src, backend, out_dir, batch, **job):
    """Run to a 16-bit alpha PNG sequence and return the frames."""
    import cv2

    plan = plan_output("alpha", str(out_dir) + "/", bits=16)
    res = run_video(VideoSource(str(src)), backend, VideoJob([plan], batch_size=batch, progress=False, **job))
    return res, [cv2.imread(str(out_dir / f), cv2.IMREAD_UNCHANGED) for f in sorted(os.listdir(out_dir))]


def test_batch_1_equals_batch_4_temporal_state(clip, tmp_path):
    b1 = FakeTemporal()
    _, a1 = _alpha_seq(clip, b1, tmp_path / "b1", 1)
    b4 = FakeTemporal()
    _, a4 = _alpha_seq(clip, b4, tmp_path / "b4", 4)
    assert b1.calls == [1] * 14 and b4.calls == [4, 4, 4, 2]
    assert len(a1) == len(a4) == 14
    for x, y in zip(a1, a4):
        assert np.array_equal(x, y)
    # state really is carried: a model reset every batch gives a different result
    class Forgetful(FakeTemporal):
        def predict_batch(self, batch):
            self.state = None
            return super().predict_batch(batch)
    _, af = _alpha_seq(clip, Forgetful(), tmp_path / "bf", 4)
    assert any(not np.array_equal(x, y) for x, y in zip(a1, af))


def test_oom_halves_batch_and_goes_on(clip, tmp_path):
    ref = FakeTemporal()
    _, a_ref = _alpha_seq(clip, ref, tmp_path / "ref", 1)
    be = OOMBackend()
    be.limit = 1
    res, a = _alpha_seq(clip, be, tmp_path / "oom", 4)
    assert be.calls[:4] == [-4, -2, 1, 1]            # 4 -> OOM, 2 -> OOM, then 1s
    assert all(c == 1 for c in be.calls[2:])
    assert res.batch_size == 1 and res.frames == 14
    assert any("batch size lowered to 2" in n for n in res.notes)
    for x, y in zip(a_ref, a):
        assert np.array_equal(x, y)
    be0 = OOMBackend()
    be0.limit = 0
    with pytest.raises(MatteError, match="out of device memory even at --batch-size 1"):
        _alpha_seq(clip, be0, tmp_path / "oom0", 2)
    assert not (tmp_path / "oom0").exists()


def test_smoothing(clip, tmp_path):
    _, raw = _alpha_seq(clip, FakeImage(), tmp_path / "raw", 4)
    raw_f = [r.astype(np.float64) / 65535 for r in raw]
    _, med = _alpha_seq(clip, FakeImage(), tmp_path / "med", 4, smooth="median:3")
    assert len(med) == len(raw)
    for t in range(len(raw)):
        win = [raw_f[max(0, min(len(raw) - 1, k))] for k in (t - 1, t, t + 1)]
        assert np.abs(med[t] / 65535 - np.median(np.stack(win), axis=0)).max() <= 1.01 / 65535
    _, ema = _alpha_seq(clip, FakeImage(), tmp_path / "ema", 3, smooth="ema:0.5")
    s = raw_f[0]
    for t in range(len(raw)):
        s = raw_f[t] if t == 0 else 0.5 * raw_f[t] + 0.5 * s
        assert np.abs(ema[t] / 65535 - s).max() <= 1.5 / 65535
    assert parse_smooth("none") is None and parse_smooth("median") == ("median", 3)
    for bad in ("median:4", "ema:0", "blur", "ema:x"):
        with pytest.raises(MatteError):
            parse_smooth(bad)
    sm = AlphaSmoother(("median", 5))
    assert sm.delay == 2


def test_composite_over_colour_image_and_video(clip, tmp_path):
    import cv2

    red = plan_output("composite", str(tmp_path / "red") + "/")
    run_video(VideoSource(str(clip)), FakeTemporal(), VideoJob([red], composite_bg="#ff0000", progress=False))
    f = cv2.imread(str(tmp_path / "red" / "000000.png"))[..., ::-1]
    assert tuple(f[2, 60]) == (255, 0, 0)                      # alpha 0 there (background of the clip)
    assert tuple(f[24, 8]) == tuple(synth_frame(0)[24, 8]) or np.abs(f[24, 8].astype(int) - synth_frame(0)[24, 8]).max() < 6
    bgimg = tmp_path / "bg.png"
    big = np.zeros((96, 200, 3), np.uint8)
    big[..., 1] = 200
    cv2.imwrite(str(bgimg), big[..., ::-1])
    pimg = plan_output("composite", str(tmp_path / "img") + "/")
    run_video(VideoSource(str(clip)), FakeTemporal(), VideoJob([pimg], composite_bg=str(bgimg), progress=False))
    f = cv2.imread(str(tmp_path / "img" / "000000.png"))[..., ::-1]
    assert tuple(f[2, 60]) == (0, 200, 0)                      # cover-fit resize of a bigger image
    bgvid = tmp_path / "bgv.mp4"
    make_clip(bgvid, n=5, w=32, h=24, audio=False)             # shorter and smaller: fitted and looped
    pv = plan_output("composite", str(tmp_path / "vid.mp4"))
    res = run_video(VideoSource(str(clip)), FakeTemporal(), VideoJob([pv], composite_bg=str(bgvid), progress=False))
    assert res.frames == 14
    # the default background is RVM's green (120,255,155); "green" is pure green, as in every verb
    dflt = plan_output("composite", str(tmp_path / "dflt") + "/")
    run_video(VideoSource(str(clip)), FakeTemporal(), VideoJob([dflt], progress=False))
    f = cv2.imread(str(tmp_path / "dflt" / "000000.png"))[..., ::-1]
    assert tuple(f[2, 60]) == (120, 255, 155)
    assert tuple(np.round(colour_or_none("green") * 255)) == (0, 255, 0)
    assert colour_or_none("nope") is None
    with pytest.raises(MatteError, match="not a colour"):
        run_video(VideoSource(str(clip)), FakeTemporal(),
                  VideoJob([plan_output("composite", str(tmp_path / "x.mp4"))], composite_bg="nope", progress=False))
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.partial.mp4").exists()


def test_plate_and_trimap_inputs(clip, tmp_path):
    import cv2

    plate = tmp_path / "plate.png"
    cv2.imwrite(str(plate), synth_frame(0)[..., ::-1] * 0)
    plan = plan_output("alpha", str(tmp_path / "pa") + "/")
    res = run_video(VideoSource(str(clip)), vh.FakePlate(), VideoJob([plan], plate=str(plate), progress=False))
    assert res.frames == 14
    tri = tmp_path / "tri"
    tri.mkdir()
    for i in range(14):
        t = np.zeros((48, 64), np.uint8)
        t[:, : 4 * i + 4] = 128
        t[:, : 2 * i + 2] = 255
        cv2.imwrite(str(tri / f"t_{i:03d}.png"), t)
    plan = plan_output("alpha", str(tmp_path / "ta") + "/")
    run_video(VideoSource(str(clip)), vh.FakeTrimap(), VideoJob([plan], trimap=str(tri), progress=False))
    out = cv2.imread(str(tmp_path / "ta" / "000005.png"), cv2.IMREAD_UNCHANGED)
    assert out[0, 0] == 255 and out[0, 2 * 5 + 3] == 128 and out[0, 63] == 0
    # too few trimaps: clear error, nothing written
    os.remove(tri / "t_013.png")
    with pytest.raises(MatteError, match="13 frames"):
        run_video(VideoSource(str(clip)), vh.FakeTrimap(),
                  VideoJob([plan_output("alpha", str(tmp_path / "tb.mp4"))], trimap=str(tri), progress=False))
    assert not (tmp_path / "tb.mp4").exists() and not (tmp_path / "tb.partial.mp4").exists()


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("name", ["o.mov", "o.mp4", "seq/"])
def test_interrupt_leaves_partial_or_nothing(clip, tmp_path, exc, name):
    be = CrashBackend()
    be.exc = exc
    be.after = 8
    out = tmp_path / name
    plan = plan_output("rgba" if name != "o.mp4" else "composite", str(out))
    with pytest.raises(exc):
        run_video(VideoSource(str(clip)), be, VideoJob([plan], batch_size=4, progress=False))
    assert not out.exists()                                      # never a file at the final path
    if name.endswith("/"):
        partial = tmp_path / "seq.partial"
        names = sorted(os.listdir(partial))                      # complete frames only, a contiguous prefix
        assert 1 <= len(names) <= 8 and names == [f"{i:06d}.png" for i in range(len(names))]
    else:
        partial = tmp_path / name.replace(".", ".partial.")
        stamps, frames, _ = read_video(partial)                  # playable, properly closed
        assert 1 <= len(frames) <= 8
        assert vh.audio_seconds(partial) <= len(frames) / 25 + 0.6   # audio up to the last frame, not the whole clip
    # --no-partial: nothing at all
    be2 = CrashBackend()
    be2.exc = exc
    plan2 = plan_output(plan.type, str(tmp_path / ("n_" + name)))
    with pytest.raises(exc):
        run_video(VideoSource(str(clip)), be2, VideoJob([plan2], batch_size=4, progress=False, keep_partial=False))
    assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path)) and not any(
        f.startswith("n_") for f in os.listdir(tmp_path))


def test_rvm_auto_downsample_follows_authors_table():
    # documentation/inference.md, "Downsample Ratio" (portrait / full-body columns): the one rule, RVM's own
    from mattecli.backends.rvm.adapter import auto_downsample_ratio

    def rvm_auto_downsample(h, w, shot="portrait"):
        return auto_downsample_ratio(h, w, shot=shot)

    assert rvm_auto_downsample(512, 512) == 1
    assert rvm_auto_downsample(48, 64) == 1
    assert rvm_auto_downsample(720, 1280) == pytest.approx(0.375)
    assert rvm_auto_downsample(1080, 1920) == pytest.approx(0.25)
    assert rvm_auto_downsample(2160, 3840) == pytest.approx(0.125)
    assert rvm_auto_downsample(720, 1280, "full-body") == pytest.approx(0.6)
    assert rvm_auto_downsample(1080, 1920, "full-body") == pytest.approx(0.4)
    assert rvm_auto_downsample(2160, 3840, "full-body") == pytest.approx(0.2)
    assert rvm_auto_downsample(1920, 1080) == pytest.approx(0.25)   # portrait-orientation video


def test_progress_runs_on_non_tty(clip, tmp_path, capsys):
    res = run_video(VideoSource(str(clip)), FakeTemporal(),
                    VideoJob([plan_output("alpha", str(tmp_path / "p.mp4"))], progress=True))
    assert res.frames == 14 and res.fps > 0
    out, err = capsys.readouterr()
    assert out == ""                                              # stdout stays clean
    assert err == ""                                              # stderr is not a terminal: no bar at all


def test_no_progress_bar_when_stderr_is_a_file(clip, tmp_path):
    log = tmp_path / "err.log"
    with open(log, "wb") as f:
        p = vh.progress_proc(clip, tmp_path, {"TERM": "xterm-256color"}, f)
        out, _ = p.communicate(timeout=120)
    err = log.read_text()
    assert p.returncode == 0, err
    assert out.decode().strip() == str(tmp_path / "a.mp4")
    assert "\x1b" not in err and "\r" not in err                  # no escape codes, no redraws
    assert "━" not in err and "14/14" not in err                   # no bar, not even a final one
    assert "frames in" in err                                       # the one-line summary is still there


def test_progress_on_a_tty_and_no_escapes_under_no_color(clip, tmp_path):
    for sub in ("plain", "rich"):                                   # two runs: each writes its own output
        (tmp_path / sub).mkdir()
    plain = vh.run_on_pty(clip, tmp_path / "plain", {"NO_COLOR": "1", "TERM": "xterm-256color"})
    assert "14/14" in plain and "fps" in plain                      # a progress line is shown on the terminal
    assert "\x1b" not in plain                                      # ... without any ANSI code (bold included)
    rich = vh.run_on_pty(clip, tmp_path / "rich", {"TERM": "xterm-256color"})
    assert "━" in rich and "14/14" in rich                          # the normal bar on a colour terminal


# ------------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------------
def _cli(args):
    from typer.testing import CliRunner

    from mattecli.cli.app import app

    r = CliRunner().invoke(app, ["video", *args])
    return r.exit_code, r.stdout, r.stderr


def test_cli_outputs_and_template(clip, tmp_path, monkeypatch):
    register_fakes(monkeypatch)
    code, out, err = _cli([str(clip), "-m", "fake-temporal", "-T", "composite,alpha,rgba", "--template",
                           str(tmp_path / "{stem}.{type}.{ext}"), "-q"])
    assert code == 0, err
    assert out.split() == [str(tmp_path / "src.composite.mp4"), str(tmp_path / "src.alpha.mp4"),
                           str(tmp_path / "src.rgba.mov")]
    assert all(os.path.isfile(p) for p in out.split())
    code, out, err = _cli([str(clip), "-m", "fake-temporal", "-T", "rgba", "-o", str(tmp_path / "x.webm"),
                           "--option", "gain=2"])
    assert code == 0, err
    assert "re-encoded to Opus" in err and "fps" in err
    code, out, err = _cli([str(clip), "-m", "fake-image", "-o", str(tmp_path / "d"), "-T", "alpha,foreground",
                           "--smooth", "ema:0.7", "-q"])
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "d")) == ["src_alpha.mp4", "src_foreground.mp4"]


def _assert_clean(tmp_path, before):
    after = set(os.listdir(tmp_path))
    assert after == before, after - before


@pytest.mark.parametrize("case", ["not-video", "audio-only", "zero-frames", "plate-size", "unwritable", "rgba-mp4",
                                  "missing", "bad-option", "needs-plate"])
def test_cli_bad_inputs(clip, tmp_path, monkeypatch, case):
    import av
    import cv2

    register_fakes(monkeypatch)
    work = tmp_path / "w"
    work.mkdir()
    src = str(clip)
    extra: list[str] = []
    model = "fake-temporal"
    out = str(work / "out.mp4")
    want = None
    if case == "not-video":
        src = str(tmp_path / "x.mp4")
        open(src, "w").write("not a video at all")
        want = "not a video"
    elif case == "audio-only":
        src = str(tmp_path / "a.m4a")
        c = av.open(src, "w")
        s = c.add_stream("aac", rate=48000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        for pk in list(s.encode(f)) + list(s.encode(None)):
            c.mux(pk)
        c.close()
        want = "no video stream"
    elif case == "zero-frames":
        src = str(tmp_path / "z.avi")               # AVI keeps the stream header even with no frames
        c = av.open(src, "w")
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        c.start_encoding()
        c.close()
        want = "no decodable video frames"
    elif case == "plate-size":
        plate = str(tmp_path / "plate.png")
        cv2.imwrite(plate, np.zeros((32, 32, 3), np.uint8))
        extra = ["--bg", plate]
        model = "fake-plate"
        want = "32x32 but the video is 64x48"
    elif case == "unwritable":
        blocker = tmp_path / "file.txt"
        blocker.write_text("x")
        out = str(blocker / "sub" / "out.mp4")
        want = "cannot create the output folder"
    elif case == "rgba-mp4":
        extra = ["-T", "rgba"]
        want = "cannot carry alpha"
    elif case == "missing":
        src = str(tmp_path / "nope.mp4")
        want = "input not found"
    elif case == "bad-option":
        extra = ["--option", "nonsense=1"]
        want = "unknown option"
    elif case == "needs-plate":
        model = "fake-plate"
        want = "needs a clean background plate"
    before = set(os.listdir(work))
    code, stdout, err = _cli([src, "-m", model, "-o", out, "-q", *extra])
    usage = case in ("rgba-mp4", "missing", "bad-option", "needs-plate", "unwritable")
    assert code == (2 if usage else 1), err                      # usage errors before any work; a failed clip: 1
    errors = [line for line in err.splitlines() if line.startswith("mattecli: error:")]
    assert len(errors) == 1 and want in errors[0], err           # one line, no traceback
    others = [line for line in err.splitlines() if line.strip() and line not in errors]
    assert all(line.startswith("mattecli: video: 0 done, 1 failed") for line in others) and len(others) <= 1, err
    assert stdout == ""
    _assert_clean(work, before)


@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_cli_ctrl_c_in_a_real_process(tmp_path, sig, code):
    import glob
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "long.mp4"
    make_clip(src, n=150)
    out = tmp_path / "o.mov"
    script = vh.SLOW_RUN.format(tests=os.path.dirname(__file__), src=str(src), out=str(out))
    p = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "o.partial.mov"            # where the interrupted output is kept

    def writing() -> bool:                             # meanwhile it is written under a hidden name of its own
        return bool(glob.glob(str(tmp_path / ".o.mov.*.partial.mov")))
    t0 = time.time()
    while time.time() - t0 < 60 and not writing():
        time.sleep(0.05)
    time.sleep(0.5)     # some frames in (FFmpeg's write buffer may hold them all: the file size says nothing)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert f"interrupted ({sig})" in err and "partial output kept" in err
    assert "Traceback" not in err
    assert not out.exists()
    _, frames, _ = read_video(partial)
    assert 0 < len(frames) < 150


def test_read_error_mid_clip_is_one_line(clip, tmp_path, monkeypatch):
    """An I/O error while decoding the input (disk/network share gone) -> InputError naming the file."""
    import errno

    import av

    from mattecli.errors import InputError

    real_open = av.open

    class Flaky:
        def __init__(self, c):
            self._c = c

        def __getattr__(self, name):
            return getattr(self._c, name)

        def decode(self, *a, **k):
            for i, f in enumerate(self._c.decode(*a, **k)):
                if i == 5:
                    raise av.error.OSError(errno.EIO, "Input/output error", str(clip))
                yield f

    monkeypatch.setattr(av, "open", lambda path, mode="r", **kw: Flaky(real_open(path, mode, **kw))
                        if mode == "r" and str(path) == str(clip) else real_open(path, mode, **kw))
    with pytest.raises(InputError) as ei:
        run_video(VideoSource(str(clip)), FakeTemporal(),
                  VideoJob([plan_output("alpha", str(tmp_path / "a.mp4"))], batch_size=2, progress=False,
                           keep_partial=False))
    assert str(ei.value).startswith(f"{clip}: Input/output error at frame 5 (")
    assert os.listdir(tmp_path) == []


def test_cli_unmapped_os_error_is_one_line(clip, tmp_path, monkeypatch):
    """Safety net: an av/OS error that no stage mapped still ends as one line, not a traceback."""
    import errno

    import av

    from mattecli.video import pipeline

    register_fakes(monkeypatch)

    def boom(*a, **k):
        raise av.error.OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.partial.mp4"))
    monkeypatch.setattr(pipeline, "run_video", boom)
    code, out, err = _cli([str(clip), "-m", "fake-temporal", "-o", str(tmp_path / "x.mp4"), "-q"])
    assert code == 1 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("mattecli: error:")]
    assert errors == [f"mattecli: error: {clip}: {tmp_path / 'x.partial.mp4'}: No space left on device "
                      "(free some space or write elsewhere)"], err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------------------------
# several clips: one batch item per clip (per-clip errors, --report, --json), output naming, partners by name
# ------------------------------------------------------------------------------------------------------------------
def _clips(tmp_path):
    import cv2

    d = tmp_path / "clips"
    (d / "sub").mkdir(parents=True)
    make_clip(d / "a.mp4", n=5, audio=False)
    make_clip(d / "sub" / "b.mp4", n=4, audio=False)
    (d / "c.mp4").write_text("not a video")
    (d / "frames").mkdir()
    for i in range(3):                                         # a folder of frames stays one clip
        cv2.imwrite(str(d / "frames" / f"f{i + 1}.png"), synth_frame(i)[..., ::-1])
    return d


def test_cli_several_clips_report_and_json(tmp_path, monkeypatch):
    import json

    register_fakes(monkeypatch)
    d, out = _clips(tmp_path), tmp_path / "out"
    code, stdout, err = _cli([str(d), "-m", "fake-temporal", "-T", "alpha", "-o", str(out), "--report",
                              str(tmp_path / "run.json"), "-q"])
    assert code == 1, err                                       # one clip failed, the others were written
    assert stdout.split() == [str(out / "a_alpha.mp4"), str(out / "frames_alpha.mp4"), str(out / "sub/b_alpha.mp4")]
    rep = json.loads((tmp_path / "run.json").read_text())
    assert [(os.path.basename(i["input"]), i["status"]) for i in rep["items"]] == [
        ("a.mp4", "ok"), ("c.mp4", "failed"), ("frames", "ok"), ("b.mp4", "ok")]
    assert rep["items"][0]["frames"] == 5 and rep["items"][0]["size"] == "64x48"
    assert "not a video" in rep["items"][1]["error"]
    code, stdout, err = _cli([str(d / "a.mp4"), str(d / "frames"), "-m", "fake-temporal", "-o", str(out), "--json"])
    doc = json.loads(stdout)
    assert code == 0 and doc["summary"]["ok"] == 2 and doc["summary"]["verb"] == "video"


def test_cli_rerun_beside_the_clips_and_output_rules(tmp_path, monkeypatch):
    register_fakes(monkeypatch)
    d = tmp_path / "c"
    d.mkdir()
    make_clip(d / "a.mp4", n=4, audio=False)
    make_clip(d / "b.mp4", n=4, audio=False)
    outs = [str(tmp_path / "c_video" / "a_composite.mp4"), str(tmp_path / "c_video" / "b_composite.mp4")]
    code, stdout, err = _cli([str(d), "-m", "fake-temporal", "-q"])  # a folder of clips -> the sibling c_video/
    assert code == 0 and stdout.split() == outs, err
    code, stdout, err = _cli([str(d), "-m", "fake-temporal"])        # complete outputs are skipped, never replaced
    assert code == 0 and stdout == "" and "2 skipped" in err, err
    code, stdout, err = _cli([str(d), "-m", "fake-temporal", "-q", "--overwrite"])
    assert code == 0 and stdout.split() == outs, err
    code, stdout, err = _cli([str(d / "a.mp4"), "-m", "fake-temporal", "-q", "-T", "alpha"])   # beside the clip
    assert code == 0 and stdout.split() == [str(d / "a_alpha.mp4")], err
    (d / "a_alpha.mp4").write_bytes(b"half a file")                # not a complete video: an error, kept as is
    code, stdout, err = _cli([str(d / "a.mp4"), "-m", "fake-temporal", "-q", "-T", "alpha"])
    assert code == 1 and "incomplete" in err and (d / "a_alpha.mp4").read_bytes() == b"half a file", err
    for args, want in ((["-o", str(tmp_path / "x.mp4")], "with 2 clips -o is a folder or a template"),
                       (["-o", str(tmp_path / "{stem}.mp4"), "-T", "alpha,rgba"], "has no {type} field")):
        code, stdout, err = _cli([str(d / "a.mp4"), str(d / "b.mp4"), "-m", "fake-temporal", *args])
        assert code == 2 and want in err, err
    code, _, err = _cli([str(d / "a.mp4"), "-m", "fake-temporal", "-T", "alpha,rgba", "-o", str(tmp_path / "x.mov")])
    assert code == 2 and "several --output-type values" in err, err


def test_cli_plates_paired_by_clip_name(tmp_path, monkeypatch):
    import cv2

    register_fakes(monkeypatch)
    d, plates = tmp_path / "c", tmp_path / "plates"
    d.mkdir()
    plates.mkdir()
    for n in ("a", "b", "z"):
        make_clip(d / f"{n}.mp4", n=3, audio=False)
    cv2.imwrite(str(plates / "a.png"), np.zeros((48, 64, 3), np.uint8))
    cv2.imwrite(str(plates / "b_bg.png"), np.zeros((48, 64, 3), np.uint8))
    code, stdout, err = _cli([str(d), "-m", "fake-plate", "--bg", str(plates), "-T", "alpha", "-o",
                              str(tmp_path / "o"), "-q"])
    assert code == 1 and len(stdout.split()) == 2, err
    assert "--bg: nothing for" in err and "z.mp4" in err


def test_video_package_does_not_import_the_cli():
    import pathlib

    import mattecli.video as pkg

    for f in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        text = f.read_text()
        assert "mattecli.cli" not in text and "from ..cli" not in text, f
