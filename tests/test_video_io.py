"""Video reading/writing: timestamps, frame rate, audio, rotation, colour tags, alpha round trips."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

import video_helpers as vh
from video_helpers import (FakeTemporal, audio_packets, audio_seconds, frame_batch, make_clip, read_video,
                           synth_frame)

from mattecli.batch import natural_key
from mattecli.errors import InputError, MissingInput, UsageError
from mattecli.video.encode_plan import plan_output
from mattecli.video.job import VideoJob
from mattecli.video.oserrors import OutputError
from mattecli.video.pipeline import run_video
from mattecli.video.reader import VideoSource
from mattecli.video.sequence import list_sequence
from mattecli.video.threads import ThreadedReader

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _run(src_path, otype, out, batch=4, **kw):
    return run_video(VideoSource(str(src_path)), FakeTemporal(), VideoJob([plan_output(otype, str(out), **kw)],
                                                                         batch_size=batch, progress=False))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    p = d / "src.mp4"
    meta = make_clip(p, n=16, rate=Fraction(30000, 1001))
    return p, meta


def test_reader_frames_and_timestamps(clip):
    p, meta = clip
    src = VideoSource(str(p))
    info = src.info
    assert (info.width, info.height) == (64, 48)
    assert info.rate == Fraction(30000, 1001)
    assert info.has_audio
    frames = list(ThreadedReader(src.frames(), maxsize=2))
    assert len(frames) == meta["n"]
    assert [f.pts for f in frames] == [int(x * meta["time_base"] / info.time_base) for x in meta["pts"]]
    assert frames[3].image.shape == (48, 64, 3) and frames[3].image.dtype == np.uint8
    assert np.abs(frames[3].image.astype(int) - synth_frame(3)).mean() < 4


@pytest.mark.parametrize("otype,name", [("composite", "c.mp4"), ("rgba", "r.mov"), ("alpha", "a.mkv"),
                                        ("rgba", "r.webm")])
def test_frame_count_timestamps_rate_audio_kept(clip, tmp_path, otype, name):
    p, meta = clip
    out = tmp_path / name
    res = _run(p, otype, out)
    assert res.outputs == [str(out)] and out.is_file()
    assert not (tmp_path / name.replace(".", ".partial.")).exists()
    src_stamps, _, src_info = read_video(p)
    stamps, frames, info = read_video(out, libvpx=name.endswith(".webm"))
    assert len(frames) == len(src_stamps) == meta["n"]
    t_src = [float(a * b) for a, b in src_stamps]
    t_out = [float(a * b) for a, b in stamps]
    tol = 1.5e-3 if name.endswith((".webm", ".mkv")) else 1e-9   # Matroska stores milliseconds
    assert np.allclose(t_out, t_src, atol=tol, rtol=0)
    if name.endswith((".mp4", ".mov")):
        assert info["guessed_rate"] == Fraction(30000, 1001)
    assert info["n_audio"] == 1
    a_src, a_out = audio_seconds(p), audio_seconds(out)
    if name.endswith(".webm"):   # AAC cannot go into WebM: re-encoded to Opus (and said so)
        assert abs(a_out - a_src) < 0.03
        assert any("re-encoded to Opus" in n for n in res.notes)
    else:                        # copied untouched
        assert audio_packets(out) == audio_packets(p)
        # MP4/MOV keep the source's edit list exactly; Matroska has none, so AAC's 1024 priming samples sit at a
        # negative timestamp there (players skip them) and a plain decode counts them.
        tol = 1024 / 48000 + 1e-9 if name.endswith(".mkv") else 1e-9
        assert a_out == pytest.approx(a_src, abs=tol)


def test_variable_frame_rate_preserved(tmp_path):
    pts = [0, 3003, 6006, 15015, 18018, 33033, 36036, 39039, 54054, 57057, 60060, 90090]
    p = tmp_path / "vfr.mp4"
    make_clip(p, pts=pts, rate=Fraction(30000, 1001), time_base=Fraction(1, 90000))
    for name in ("v.mp4", "v.mov"):
        out = tmp_path / name
        _run(p, "composite" if name.endswith("mp4") else "rgba", out, batch=5)
        stamps, frames, _ = read_video(out)
        got = [float(a * b) for a, b in stamps]
        assert np.allclose(got, [x / 90000 for x in pts], atol=1e-9, rtol=0), name


def test_rotation_honoured_and_kept(tmp_path):
    p = tmp_path / "rot.mp4"
    make_clip(p, n=6, rotation=90)           # coded 48x64, displayed 64x48
    src = VideoSource(str(p))
    assert src.info.rotation == 90 and (src.info.width, src.info.height) == (64, 48)
    f0 = next(src.frames())
    assert np.abs(f0.image.astype(int) - synth_frame(0)).mean() < 4   # upright pixels reach the model
    src.close()
    out = tmp_path / "o.mp4"
    _run(p, "composite", out)
    _, frames, info = read_video(out)
    assert info["rotation"] == 90 and frames[0].shape[:2] == (64, 48)   # same coded layout + same display matrix
    seq = tmp_path / "seq"
    _run(p, "rgba", str(seq) + "/")
    import cv2

    a = cv2.imread(str(seq / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (48, 64, 4)                                      # sequences are written upright


def test_colour_tags_kept(tmp_path):
    import av

    p = tmp_path / "bt709.mp4"
    out = av.open(str(p), "w")
    s = out.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    s.codec_context.colorspace = 1
    s.codec_context.color_primaries = 1
    s.codec_context.color_trc = 1
    s.codec_context.color_range = 1
    s.options = {"x264-params": "log-level=error"}
    for i in range(4):
        f = av.VideoFrame.from_ndarray(synth_frame(i), format="rgb24").reformat(format="yuv420p", dst_colorspace=1,
                                                                                 dst_color_range=1)
        f.pts = i
        for pk in s.encode(f):
            out.mux(pk)
    for pk in s.encode(None):
        out.mux(pk)
    out.close()
    o = tmp_path / "o.mov"
    _run(p, "composite", o)
    c = av.open(str(o))
    cc = c.streams.video[0].codec_context
    assert (int(cc.colorspace), int(cc.color_primaries), int(cc.color_trc)) == (1, 1, 1)
    c.close()


@pytest.mark.parametrize("name,tol", [("r.mov", 2), ("r.webm", 12), ("r.mkv", 0), ("seq8/", 0), ("seq16/%04d.png", 0)])
def test_rgba_alpha_round_trip(clip, tmp_path, name, tol):
    import cv2

    p, meta = clip
    out = tmp_path / name
    bits = 16 if "seq16" in name else 8
    _run(p, "rgba", out, bits=bits)
    # what the model produced on the decoded source frames
    src_frames = [f.image for f in VideoSource(str(p)).frames()]
    be = FakeTemporal()
    exp = [be.predict_batch(frame_batch(im)).alpha[0, 0].numpy() for im in src_frames]
    if name.endswith("/") or "%" in name:
        folder = tmp_path / name.split("/")[0]
        files = sorted(os.listdir(folder))
        assert len(files) == meta["n"]
        assert files[0] == ("0000.png" if "%04d" in name else "000000.png")
        got = [cv2.imread(str(folder / f), cv2.IMREAD_UNCHANGED) for f in files]
        assert got[0].shape == (48, 64, 4)
        assert got[0].dtype == (np.uint16 if bits == 16 else np.uint8)
        scale = 65535.0 if bits == 16 else 255.0
        alphas = [g[..., 3].astype(np.float64) / scale for g in got]
        step = 1.0 / scale
    else:
        _, frames, _ = read_video(out, libvpx=name.endswith(".webm"))
        assert len(frames) == meta["n"]
        alphas = [f[..., 3].astype(np.float64) / 255 for f in frames]
        step = 1.0 / 255
    for a, e in zip(alphas, exp):
        assert a.max() - a.min() > 0.5                       # alpha exists and varies
        assert np.abs(a - e).max() <= (tol + 0.51) * step + 1e-9 or np.abs(a - e).mean() < tol * step


def test_vp9_alpha_needs_libvpx_decoder(clip, tmp_path):
    """The native vp9 decoder drops alpha; our verification forces libvpx-vp9 (and so must users' tools)."""
    p, _ = clip
    out = tmp_path / "r.webm"
    _run(p, "rgba", out)
    import av

    c = av.open(str(out))
    f = next(c.decode(video=0))
    assert f.format.name == "yuv420p"   # native decoder: no alpha plane
    c.close()
    _, frames, _ = read_video(out, libvpx=True)
    assert frames[5][..., 3].min() < 50 and frames[5][..., 3].max() > 200


def test_verification_catches_opaque_output(clip, tmp_path, monkeypatch):
    """If an encoder silently drops alpha, the run fails and nothing is left at the final path."""
    from mattecli.video import readback

    p, _ = clip
    plan = plan_output("rgba", str(tmp_path / "r.mov"))
    plan.pix_fmt = "yuv444p10le"         # simulate a build that writes ProRes without alpha
    with pytest.raises(OutputError, match="alpha"):
        run_video(VideoSource(str(p)), FakeTemporal(), VideoJob([plan], progress=False))
    assert not (tmp_path / "r.mov").exists() and not (tmp_path / "r.partial.mov").exists()
    assert readback.VERIFY_FRAMES > 0


def test_image_sequence_input_natural_sort(tmp_path):
    import cv2

    d = tmp_path / "frames"
    d.mkdir()
    order = [1, 2, 10, 3, 20]
    for k, n in enumerate(sorted(order)):
        cv2.imwrite(str(d / f"f{n}.png"), synth_frame(k)[..., ::-1])
    files = list_sequence(str(d))
    assert [os.path.basename(f) for f in files] == ["f1.png", "f2.png", "f3.png", "f10.png", "f20.png"]
    src = VideoSource(str(d), fps=24)
    assert src.info.kind == "sequence" and src.info.frame_count == 5 and src.info.rate == 24
    frames = list(src.frames())
    assert [f.pts for f in frames] == [0, 1, 2, 3, 4] and frames[0].time_base == Fraction(1, 24)
    for k, f in enumerate(frames):
        assert np.array_equal(f.image, synth_frame(k))
    # %06d pattern input, numbers not starting at 0
    e = tmp_path / "pat"
    e.mkdir()
    for k in range(3):
        cv2.imwrite(str(e / f"img_{k + 7:06d}.png"), synth_frame(k)[..., ::-1])
    src = VideoSource(str(e / "img_%06d.png"))
    assert src.info.frame_count == 3
    out = tmp_path / "o.mp4"
    res = run_video(src, FakeTemporal(), VideoJob([plan_output("composite", str(out))], progress=False))
    assert res.frames == 3
    stamps, _, info = read_video(out)
    assert len(stamps) == 3 and info["guessed_rate"] == 30
    assert natural_key("a10") > natural_key("a9")


def test_plan_output_choices():
    assert plan_output("rgba", "x.mov").codec == "prores_ks"
    assert plan_output("rgba", "x.mov").pix_fmt == "yuva444p10le"
    assert plan_output("rgba", "x.webm").pix_fmt == "yuva420p"
    assert plan_output("composite", "x.mp4").codec == "libx264"
    assert plan_output("composite", "x.mp4", codec="h265").codec == "libx265"
    assert plan_output("alpha", "x.mkv").codec == "ffv1"                 # the documented table: FFV1 gray
    assert plan_output("alpha", "x.mkv", codec="h264", lossless=True).codec == "libx264"   # --codec is obeyed
    assert plan_output("alpha", "x.mkv", lossless=True).codec == "ffv1"
    assert plan_output("alpha", "x.mp4", lossless=True).options["qp"] == "0"
    assert plan_output("rgba", "out/").kind == "sequence"
    assert plan_output("rgba", "out/%06d.png", bits=16).bits == 16
    for bad in [("rgba", "x.mp4"), ("composite", "x.avi"), ("alpha", "x.png"), ("composite", "x.mp4", "vp9"),
                ("rgba", "x.mov", "h264")]:
        with pytest.raises(UsageError):
            plan_output(bad[0], bad[1], codec=bad[2] if len(bad) > 2 else None)


def test_lossless_alpha_exact(clip, tmp_path):
    p, _ = clip
    outs = {}
    for name in ("a.mkv", "a.mp4"):
        res = run_video(VideoSource(str(p)), FakeTemporal(),
                        VideoJob([plan_output("alpha", str(tmp_path / name), lossless=True)], progress=False))
        assert res.frames == 16
        import av

        c = av.open(str(tmp_path / name))
        outs[name] = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
        c.close()
    seq = tmp_path / "seq"
    run_video(VideoSource(str(p)), FakeTemporal(), VideoJob([plan_output("alpha", str(seq) + "/")], progress=False))
    import cv2

    ref = [cv2.imread(str(seq / f), cv2.IMREAD_UNCHANGED) for f in sorted(os.listdir(seq))]
    for name, frames in outs.items():
        assert len(frames) == len(ref)
        for a, b in zip(frames, ref):
            assert np.array_equal(a, b), name


def test_reader_errors(tmp_path):
    bad = tmp_path / "notvideo.mp4"
    bad.write_text("hello, not a video")
    with pytest.raises(InputError, match="not a video"):
        VideoSource(str(bad))
    with pytest.raises(MissingInput, match="no such file"):
        VideoSource(str(tmp_path / "missing.mp4"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image files"):
        VideoSource(str(empty))


def test_subtitles_copied_where_the_container_takes_them(tmp_path):
    import av

    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nHello\n\n2\n00:00:00,300 --> 00:00:00,600\nWorld\n")
    src = tmp_path / "withsub.mkv"
    si = av.open(str(srt))
    ss = si.streams.subtitles[0]
    out = av.open(str(src), "w")
    v = out.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    o = out.add_stream_from_template(ss)
    packets = [p for p in si.demux(ss) if p.size]
    for i in range(12):
        f = av.VideoFrame.from_ndarray(synth_frame(i))
        f.pts = i
        for p in v.encode(f):
            out.mux(p)
        if i == 0:
            for p in packets:
                p.stream = o
                out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    out.close()
    si.close()
    res = _run(src, "composite", tmp_path / "o.mkv")
    c = av.open(str(tmp_path / "o.mkv"))
    assert [bytes(p) for p in c.demux(subtitles=0) if p.size] == [b"Hello", b"World"]
    c.close()
    assert not res.notes
    res = _run(src, "composite", tmp_path / "o.mp4")          # MP4 takes mov_text, not SubRip: said, not silent
    assert any("subtitle stream 1 (srt) cannot go into .mp4" in n for n in res.notes)


# ------------------------------------------------------------------------------------------------------------------
# alpha codecs per extension (the README table, `mattecli video`)
# ------------------------------------------------------------------------------------------------------------------
ALPHA_TABLE = [  # name, kwargs, encoder, pix_fmt written, decoder name, exact?
    ("a.mp4", {}, "libx264", "gray", "h264", False),
    ("a.m4v", {}, "libx264", "gray", "h264", False),
    ("a.mkv", {}, "ffv1", "gray", "ffv1", True),
    ("h.mkv", {"codec": "h264"}, "libx264", "gray", "h264", False),
    ("h5.mkv", {"codec": "h265"}, "libx265", "gray", "hevc", False),
    ("a.mov", {}, "prores_ks", "yuv422p10le", "prores", False),
    ("a.webm", {}, "libvpx-vp9", "yuv420p", "vp9", False),
    ("l.mp4", {"lossless": True}, "libx264", "gray", "h264", True),
    ("l.mov", {"lossless": True}, "libx264", "gray", "h264", True),
    ("l.webm", {"lossless": True}, "libvpx-vp9", "yuv444p", "vp9", True),
]


@pytest.mark.parametrize("name,kw,enc,pix,dec,exact", ALPHA_TABLE)
def test_alpha_codec_per_extension(clip, tmp_path, name, kw, enc, pix, dec, exact):
    import av

    from mattecli.video.encode_plan import encoder_pix_fmts

    plan = plan_output("alpha", str(tmp_path / name), **kw)
    if pix == "gray" and "gray" not in encoder_pix_fmts(enc):   # documented fallback: neutral chroma, said so
        assert plan.pix_fmt == ("yuv444p" if exact else "yuv420p") and "no gray" in plan.note
        pytest.skip(f"this PyAV's {enc} has no gray format")
    assert (plan.codec, plan.pix_fmt) == (enc, pix), plan.describe()
    assert plan.gray_direct == (pix == "gray" or exact)
    p, _ = clip
    ref_dir = tmp_path / "ref"
    run_video(VideoSource(str(p)), FakeTemporal(), VideoJob([plan_output("alpha", str(ref_dir) + "/")],
                                                           progress=False))
    import cv2

    ref = [cv2.imread(str(ref_dir / f), cv2.IMREAD_UNCHANGED) for f in sorted(os.listdir(ref_dir))]
    out = tmp_path / name
    run_video(VideoSource(str(p)), FakeTemporal(), VideoJob([plan], progress=False))
    c = av.open(str(out))
    st = c.streams.video[0]
    assert st.codec_context.name == dec
    if dec == "h264" and pix == "gray":
        # FFmpeg's h264 decoder hands 4:0:0 out as yuv(j)420p with neutral chroma; the bitstream itself is checked
        assert vh.h264_chroma_format_idc(bytes(st.codec_context.extradata)) == 0
        assert st.codec_context.color_range == 2        # full range: alpha 0..255 stored as is
    else:
        assert st.codec_context.pix_fmt == pix
    frames = [f.to_ndarray(format="gray") if f.format.name == "gray" else
              f.reformat(format="gray", src_color_range=2 if plan.gray_direct else None).to_ndarray()
              for f in c.decode(st)]
    c.close()
    assert len(frames) == len(ref)
    err = max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(frames, ref))
    assert err == 0 if exact else err < 3, err


# ------------------------------------------------------------------------------------------------------------------
# write errors (disk full, file-size limit): one line, nothing corrupt left behind
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("name,otype,after", [("x.mov", "rgba", 3), ("x.mp4", "alpha", 0), ("x.mkv", "alpha", 2)])
def test_disk_full_video_is_one_line_and_leaves_nothing(clip, tmp_path, monkeypatch, name, otype, after, keep):
    from mattecli.video.oserrors import DiskFullError
    from mattecli.video.video_file import VideoFileSink

    monkeypatch.setattr(VideoFileSink, "_mux", vh.enospc_after(after))
    p, _ = clip
    out = tmp_path / name
    with pytest.raises(DiskFullError) as ei:
        run_video(VideoSource(str(p)), FakeTemporal(),
                  VideoJob([plan_output(otype, str(out))], batch_size=2, progress=False, keep_partial=keep))
    assert str(ei.value) == f"{out}: No space left on device (free some space or write elsewhere)"
    assert os.listdir(tmp_path) == []          # no final file, and no half-written partial


def test_disk_full_when_closing_the_file(clip, tmp_path, monkeypatch):
    """ENOSPC while flushing the encoder / writing the trailer (finish) is mapped the same way."""
    from mattecli.video.oserrors import DiskFullError
    from mattecli.video.video_file import VideoFileSink

    orig = VideoFileSink._close_container

    def close(self, partial=False):
        self._mux = vh.enospc_after(0).__get__(self)
        return orig(self, partial)
    monkeypatch.setattr(VideoFileSink, "_close_container", close)
    p, _ = clip
    with pytest.raises(DiskFullError, match="No space left on device"):
        _run(p, "composite", tmp_path / "c.mp4")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("keep", [True, False])
def test_disk_full_png_sequence(clip, tmp_path, monkeypatch, keep):
    import errno

    from mattecli.video.oserrors import DiskFullError
    from mattecli.video.png_sequence import PngSequenceSink

    n = {"n": 0}
    real = PngSequenceSink._write_bytes

    def write(path, data):
        n["n"] += 1
        if n["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real(path, data)
    monkeypatch.setattr(PngSequenceSink, "_write_bytes", staticmethod(write))
    p, _ = clip
    with pytest.raises(DiskFullError, match=r"seq/: No space left on device \(free some space"):
        run_video(VideoSource(str(p)), FakeTemporal(),
                  VideoJob([plan_output("alpha", str(tmp_path / "seq") + "/")], batch_size=2, progress=False,
                           keep_partial=keep))
    assert not (tmp_path / "seq").exists()
    if keep:   # the complete frames stay, clearly named; no temporary half-file among them
        assert sorted(os.listdir(tmp_path / "seq.partial")) == [f"{i:06d}.png" for i in range(5)]
    else:
        assert os.listdir(tmp_path) == []


def test_disk_full_cli_one_line(clip, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from video_helpers import register_fakes

    from mattecli.cli.app import app
    from mattecli.video.video_file import VideoFileSink

    register_fakes(monkeypatch)
    monkeypatch.setattr(VideoFileSink, "_mux", vh.enospc_after(2))
    p, _ = clip
    out = tmp_path / "tiny" / "x.mov"
    for flag in ("--keep-partial", "--no-partial"):
        r = CliRunner().invoke(app, ["video", str(p), "-m", "fake-temporal", "-T", "alpha", "-o", str(out), "-q",
                                     flag])
        assert r.exit_code == 1, r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("mattecli: error:")]
        assert len(errors) == 1 and errors[0].endswith(
            f"{out}: No space left on device (free some space or write elsewhere)"), r.stderr
        assert "Traceback" not in r.stderr
        assert r.stdout == "" and os.listdir(tmp_path / "tiny") == []


@pytest.mark.parametrize("name,otype,limit", [("x.mov", "rgba", 20000), ("seq/", "alpha", 300)])
def test_real_write_error_in_a_process(clip, tmp_path, name, otype, limit):
    """A real OS write error from FFmpeg's I/O (file-size limit -> EFBIG): one line, exit 1, no traceback."""
    import subprocess
    import sys

    p, _ = clip
    big = tmp_path / "big.mp4"
    make_clip(big, n=12, w=320, h=240, audio=False)
    out = tmp_path / "o" / name
    code = vh.FSIZE_RUN.format(tests=os.path.dirname(__file__), src=str(big), otype=otype, out=str(out), limit=limit)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("mattecli: error:")]
    assert lines == [f"mattecli: error: {big}: {out}: File too large (a file-size limit was reached; write "
                     "elsewhere, or to a PNG folder)"], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not (tmp_path / "o" / "x.partial.mov").exists()


# ------------------------------------------------------------------------------------------------------------------
# inputs that end early: truncated files are an error (or, with allow_truncated, a warning), never a quiet success
# ------------------------------------------------------------------------------------------------------------------
def _encode(path, n=100, fmt=None, options=None, audio_seconds=None):
    """A 25 fps H.264 clip of ``n`` frames (GOP 10), with an AAC track of ``audio_seconds`` (None: none)."""
    import av

    out = av.open(str(path), "w", format=fmt, options=options or {})
    vs = out.add_stream("libx264", rate=25)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
    vs.options = {"crf": "10", "preset": "ultrafast", "g": "10", "x264-params": "log-level=error"}
    aus = None
    if audio_seconds:
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "mono"
    for i in range(n):
        f = av.VideoFrame.from_ndarray(synth_frame(i), format="rgb24")
        f.pts = i
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode(None):
        out.mux(p)
    if aus is not None:
        snd = np.zeros((1, int(audio_seconds * 48000)), np.float32)
        af = av.AudioFrame.from_ndarray(snd, format="flt", layout="mono")
        af.sample_rate, af.pts = 48000, 0
        for p in [*aus.encode(af), *aus.encode(None)]:
            out.mux(p)
    out.close()
    return path


def _cut(path, dest):
    data = path.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    d = tmp_path_factory.mktemp("trunc")
    mp4 = _cut(_encode(d / "fs.mp4", options={"movflags": "faststart"}), d / "cut.mp4")   # index at the front
    mkv = _cut(_encode(d / "full.mkv", audio_seconds=4.0), d / "cut.mkv")
    return {"mp4": mp4, "mkv": mkv, "full_mp4": d / "fs.mp4", "full_mkv": d / "full.mkv"}


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_truncated_input_is_an_error_naming_the_frame_and_frames_written(truncated, tmp_path, kind):
    src = truncated[kind]
    out = tmp_path / "a.mp4"
    with pytest.raises(InputError) as ei:
        run_video(VideoSource(str(src)), FakeTemporal(),
                  VideoJob([plan_output("alpha", str(out))], batch_size=4, progress=False, keep_partial=False))
    msg = str(ei.value)
    import re

    m = re.match(rf"{re.escape(str(src))}: the input ends early at frame (\d+) of 100 \(truncated or damaged file: "
                 r"the video stops at [\d.]+ s of 4\.00 s\); (\d+) of 100 frames written, the output was not finished; "
                 r"pass --allow-truncated to keep the frames that decode$", msg)
    assert m, msg
    assert 10 < int(m.group(1)) < 90 and m.group(2) == m.group(1)
    assert not out.exists() and os.listdir(tmp_path) == []        # no output, no lock file, no partial
    # allow_truncated: the frames that decode, a warning, and the summary says what the container announced
    res = run_video(VideoSource(str(src)), FakeTemporal(),
                    VideoJob([plan_output("alpha", str(out))], batch_size=4, progress=False, allow_truncated=True))
    assert res.frames == int(m.group(1)) and len(read_video(out)[1]) == res.frames
    assert res.frames_expected == 100 and res.frames_text() == f"{res.frames} frames (the container says 100)"
    assert any("ends early at frame" in n and "--allow-truncated" in n for n in res.notes), res.notes


def test_truncated_input_keeps_a_partial_output_by_default(truncated, tmp_path):
    out = tmp_path / "a.mov"
    with pytest.raises(InputError, match="ends early"):
        run_video(VideoSource(str(truncated["mp4"])), FakeTemporal(),
                  VideoJob([plan_output("alpha", str(out))], batch_size=4, progress=False))
    assert not out.exists() and os.listdir(tmp_path) == ["a.partial.mov"]
    assert 10 < len(read_video(tmp_path / "a.partial.mov")[1]) < 90


def test_complete_inputs_are_not_truncated(truncated, tmp_path):
    """Audio longer than the video (a Matroska file's duration is the longest stream's) is no truncation."""
    longer = _encode(tmp_path / "long_audio.mkv", n=50, audio_seconds=3.0)
    for src, n in ((truncated["full_mp4"], 100), (truncated["full_mkv"], 100), (longer, 50)):
        res = run_video(VideoSource(str(src)), FakeTemporal(),
                        VideoJob([plan_output("alpha", str(tmp_path / f"o_{src.stem}.mp4"))], progress=False))
        assert res.frames == n and res.frames_expected is None and res.frames_text() == f"{n} frames", src
        assert not res.notes


def test_decoding_error_mid_clip_stops_there(clip, tmp_path, monkeypatch):
    import av

    p, _ = clip
    real_open = av.open

    class Broken:
        def __init__(self, c):
            self._c = c

        def __getattr__(self, name):
            return getattr(self._c, name)

        def decode(self, *a, **k):
            for i, f in enumerate(self._c.decode(*a, **k)):
                if i == 5:
                    raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
                yield f

    monkeypatch.setattr(av, "open", lambda path, mode="r", **kw: Broken(real_open(path, mode, **kw))
                        if mode == "r" and str(path) == str(p) else real_open(path, mode, **kw))
    job = VideoJob([plan_output("alpha", str(tmp_path / "a.mp4"))], batch_size=2, progress=False, keep_partial=False)
    with pytest.raises(InputError, match=r"ends early at frame 5 of 16 \(decoding failed: .*Invalid data.*\); "
                                         r"5 of 16 frames written"):
        run_video(VideoSource(str(p)), FakeTemporal(), job)
    job.allow_truncated = True
    res = run_video(VideoSource(str(p)), FakeTemporal(), job)
    assert res.frames == 5 and res.frames_text() == "5 frames (the container says 16)"


def test_cli_truncated_input_exits_1_with_one_line(truncated, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from video_helpers import register_fakes

    from mattecli.cli.app import app

    register_fakes(monkeypatch)
    out = tmp_path / "o" / "x.mp4"
    r = CliRunner().invoke(app, ["video", str(truncated["mp4"]), "-m", "fake-temporal", "-T", "alpha", "-o", str(out),
                                 "-q", "--no-partial"])
    assert r.exit_code == 1, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("mattecli: error:")]
    assert len(errors) == 1 and "the input ends early at frame" in errors[0] and "of 100 frames written" in errors[0]
    assert "Traceback" not in r.stderr and not out.exists()
