"""Helpers for the video tests: tiny synthetic clips made with PyAV, and fake backends.

Not a test module (no ``test_`` prefix); imported by tests/test_video_*.py.
"""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from mattecli.backends.base import Backend, Batch, Prediction
from mattecli.options import Option
from mattecli.registry import ModelEntry


def synth_frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """A bright square moving over a dark, textured background."""
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([20 + (xx * 40 // w), 30 + (yy * 30 // h), 60 + 0 * xx], axis=2).astype(np.uint8)
    img = bg.copy()
    s = min(w, h) // 3
    x0 = (3 * i) % max(1, w - s)
    y0 = (h - s) // 2
    img[y0:y0 + s, x0:x0 + s] = (230, 210, 190)
    return img


def make_clip(path, n: int = 16, w: int = 64, h: int = 48, rate=Fraction(25), audio: bool = True,
              rotation: int = 0, pts: list[int] | None = None, time_base=None, codec: str = "libx264",
              subtitles: bool = False, audio_codec: str = "aac") -> dict:
    """Write a small clip; returns what was written (pts, time base, audio seconds)."""
    import av

    rate = Fraction(rate)
    tb = Fraction(time_base) if time_base else (Fraction(1, 90000) if pts else 1 / rate)
    out = av.open(str(path), "w")
    vs = out.add_stream(codec, rate=rate)
    ww, hh = (h, w) if rotation % 180 else (w, h)
    vs.width, vs.height = ww, hh
    vs.pix_fmt = "yuv420p"
    vs.codec_context.time_base = tb
    vs.time_base = tb
    if codec == "libx264":
        vs.options = {"crf": "10", "preset": "ultrafast", "x264-params": "log-level=error"}
    if rotation:
        vs.set_display_rotation(rotation)
    aus = None
    a_rate = 48000 if audio_codec in ("libopus", "aac") else 44100
    if audio:
        aus = out.add_stream(audio_codec, rate=a_rate)
        aus.layout = "mono"
    if pts is None:
        pts = [int(round(i / rate / tb)) for i in range(n)]
    for i, p in enumerate(pts):
        img = synth_frame(i, w, h)
        if rotation:
            from mattecli.video.reader import rotate_coded

            img = rotate_coded(img, rotation)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = p
        f.time_base = tb
        for pk in vs.encode(f):
            out.mux(pk)
    for pk in vs.encode(None):
        out.mux(pk)
    seconds = float((pts[-1] * tb) + 1 / rate)
    if audio:
        ns = int(round(seconds * a_rate))
        t = np.arange(ns) / a_rate
        snd = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(snd, format="flt", layout="mono")
        af.sample_rate = a_rate
        af.pts = 0
        for pk in aus.encode(af):
            out.mux(pk)
        for pk in aus.encode(None):
            out.mux(pk)
    out.close()
    return {"pts": pts, "time_base": tb, "seconds": seconds, "n": len(pts)}


def read_video(path, *, libvpx: bool = False):
    """Decode a file: (list of (pts, time_base), list of rgba uint8 frames (rotation NOT applied), stream info)."""
    import av

    c = av.open(str(path))
    st = c.streams.video[0]
    frames, stamps = [], []
    ctx = None
    if libvpx:
        ctx = av.CodecContext.create("libvpx-vp9", "r")
        if st.codec_context.extradata:
            ctx.extradata = st.codec_context.extradata

    def take(fs):
        for f in fs:
            stamps.append((f.pts, Fraction(st.time_base)))
            frames.append(f.to_ndarray(format="rgba"))
    for pkt in c.demux(st):
        if ctx is None:
            take(pkt.decode())
        elif pkt.size:
            take(ctx.decode(pkt))
    if ctx is not None:
        take(ctx.decode(None))
    info = {"rate": st.average_rate, "guessed_rate": st.guessed_rate, "time_base": st.time_base,
            "codec": st.codec_context.name, "n_audio": len(c.streams.audio),
            "rotation": None}
    c.close()
    c = av.open(str(path))
    for f in c.decode(video=0):
        info["rotation"] = f.rotation
        break
    c.close()
    return stamps, frames, info


def audio_seconds(path) -> float:
    """Duration of the first audio stream: decoded samples / sample rate."""
    import av

    c = av.open(str(path))
    a = c.streams.audio[0]
    n, rate = 0, a.codec_context.sample_rate
    for f in c.decode(a):
        n += f.samples
        rate = f.sample_rate
    c.close()
    return n / rate


def audio_packets(path) -> list[bytes]:
    import av

    c = av.open(str(path))
    out = [bytes(p) for p in c.demux(audio=0) if p.size]
    c.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# fake backends (the model contract: predict_batch(Batch) -> Prediction)
# ---------------------------------------------------------------------------------------------------------------
ENTRY_TEMPORAL = ModelEntry(name="fake-temporal", family="fake", summary="test: luma key with running state",
                            outputs=("alpha", "foreground"), temporal=True,
                            adapter="video_helpers:FakeTemporal", options={"gain": Option(4.0, "float")})
ENTRY_IMAGE = ModelEntry(name="fake-image", family="fake", summary="test: per-frame luma key",
                         adapter="video_helpers:FakeImage")
ENTRY_PLATE = ModelEntry(name="fake-plate", family="fake", summary="test: difference to a plate",
                         requires=frozenset({"background"}), adapter="video_helpers:FakePlate")
ENTRY_TRIMAP = ModelEntry(name="fake-trimap", family="fake", summary="test: trimap passthrough",
                          requires=frozenset({"trimap"}), adapter="video_helpers:FakeTrimap")


def luma_key(x, gain: float = 4.0):
    """[B,3,H,W] float in [0,1] -> [B,1,H,W] alpha."""
    luma = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return ((luma - 0.45) * gain).clamp(0, 1)


def check_canonical(batch: Batch) -> None:
    """What the video pipeline must hand every family: uint8 frames, uint8 {0,128,255} trimaps, uint8 plates."""
    import torch

    assert batch.image.dtype == torch.uint8 and batch.image.shape[1] == 3, batch.image.dtype
    if batch.trimap is not None:
        assert batch.trimap.dtype == torch.uint8 and batch.trimap.shape[1] == 1
        assert set(torch.unique(batch.trimap).tolist()) <= {0, 128, 255}
    if batch.background is not None:
        assert batch.background.dtype == torch.uint8 and batch.background.shape == batch.image.shape


def frame_batch(image: np.ndarray) -> Batch:
    """One HxWx3 uint8 frame as a canonical batch."""
    import torch

    return Batch(image=torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None])


class FakeTemporal(Backend):
    """alpha_t = 0.5 * key(frame_t) + 0.5 * alpha_{t-1}: the state crosses batch boundaries."""

    def __init__(self, entry=ENTRY_TEMPORAL, wset=None, **options):
        super().__init__(entry, wset, **options)
        self.state = None
        self.calls: list[int] = []

    def reset(self):
        self.state = None

    def predict_batch(self, batch):
        import torch

        check_canonical(batch)
        self.calls.append(batch.n)
        x = batch.float_image()
        outs = []
        for i in range(batch.n):
            a = luma_key(x[i:i + 1], float(self.options["gain"]))
            self.state = a if self.state is None else 0.5 * a + 0.5 * self.state
            outs.append(self.state)
        return Prediction(alpha=torch.cat(outs), foreground=x)


class FakeImage(Backend):
    def __init__(self, entry=ENTRY_IMAGE, wset=None, **options):
        super().__init__(entry, wset, **options)

    def predict_batch(self, batch):
        check_canonical(batch)
        return Prediction(alpha=luma_key(batch.float_image()))


class FakePlate(Backend):
    def __init__(self, entry=ENTRY_PLATE, wset=None, **options):
        super().__init__(entry, wset, **options)

    def predict_batch(self, batch):
        check_canonical(batch)
        assert batch.background is not None
        d = (batch.float_image() - batch.float_background()).abs().amax(dim=1, keepdim=True)
        return Prediction(alpha=(d * 4).clamp(0, 1))


class FakeTrimap(Backend):
    def __init__(self, entry=ENTRY_TRIMAP, wset=None, **options):
        super().__init__(entry, wset, **options)

    def predict_batch(self, batch):
        check_canonical(batch)
        assert batch.trimap is not None
        return Prediction(alpha=batch.trimap_levels())


class OOMBackend(FakeTemporal):
    """Raises torch.OutOfMemoryError for batches larger than ``limit``."""

    limit = 1

    def predict_batch(self, batch):
        import torch

        if batch.n > self.limit:
            self.calls.append(-batch.n)
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().predict_batch(batch)


class CrashBackend(FakeTemporal):
    """Raises after ``after`` frames (KeyboardInterrupt or RuntimeError)."""

    after = 8
    exc: type = KeyboardInterrupt

    def predict_batch(self, batch):
        done = sum(c for c in self.calls if c > 0)
        if done >= self.after:
            raise self.exc()
        return super().predict_batch(batch)


def register_fakes(monkeypatch):
    from mattecli import registry

    registry.list_models()  # load the real families first
    for e in (ENTRY_TEMPORAL, ENTRY_IMAGE, ENTRY_PLATE, ENTRY_TRIMAP):
        monkeypatch.setitem(registry._ENTRIES, e.name, e)


# ---------------------------------------------------------------------------------------------------------------
# machinery of the tests: bitstream parsing, simulated write errors, real processes (terminals, signals, limits)
# ---------------------------------------------------------------------------------------------------------------
def h264_chroma_format_idc(avcc: bytes) -> int:
    """chroma_format_idc of the first SPS in an avcC record (1 = 4:2:0; 0 = monochrome)."""
    assert avcc[0] == 1, "not an avcC record"
    n = int.from_bytes(avcc[6:8], "big")
    sps = avcc[8:8 + n]
    raw = bytearray()          # drop emulation-prevention bytes
    for i, b in enumerate(sps[1:], 1):
        if b == 3 and i >= 3 and sps[i - 1] == 0 and sps[i - 2] == 0:
            continue
        raw.append(b)
    profile = raw[0]
    bits = "".join(f"{b:08b}" for b in raw[3:])
    pos = 0

    def ue():
        nonlocal pos
        z = 0
        while bits[pos] == "0":
            z += 1
            pos += 1
        pos += 1
        v = int(bits[pos:pos + z] or "0", 2) + (1 << z) - 1
        pos += z
        return v
    ue()                       # seq_parameter_set_id
    return ue() if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135) else 1


def enospc_after(n):
    import errno

    import av

    calls = {"n": 0}

    def mux(self, packet):
        calls["n"] += 1
        if calls["n"] > n:
            raise av.error.OSError(errno.ENOSPC, "No space left on device", self.tmp)
        self.out.mux(packet)
    return mux


FSIZE_RUN = """
import resource, signal, sys
sys.path.insert(0, {tests!r})
import video_helpers as vh
from mattecli import registry
registry.list_models()
registry.register(vh.ENTRY_TEMPORAL)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from mattecli.cli.app import main
main(["video", {src!r}, "-m", "fake-temporal", "-T", {otype!r}, "-o", {out!r}, "-q"])
"""


PROGRESS_RUN = """
import sys
sys.path.insert(0, {tests!r})
import video_helpers as vh
from mattecli import registry
registry.list_models()
registry.register(vh.ENTRY_TEMPORAL)
from mattecli.cli.app import main
main(["video", {src!r}, "-m", "fake-temporal", "-T", "alpha", "-o", {out!r}, "-b", "2"])
"""


def progress_proc(clip, tmp_path, env_extra, stderr):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "FORCE_COLOR")}
    env.update(env_extra)
    code = PROGRESS_RUN.format(tests=os.path.dirname(os.path.abspath(__file__)), src=str(clip),
                               out=str(tmp_path / "a.mp4"))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=stderr, env=env)


def run_on_pty(clip, tmp_path, env_extra) -> str:
    import pty
    import select

    master, slave = pty.openpty()
    try:
        p = progress_proc(clip, tmp_path, env_extra, slave)
    finally:
        os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            data = os.read(master, 65536)
        except OSError:        # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    p.communicate(timeout=60)
    assert p.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


SLOW_RUN = """
import sys, time
sys.path.insert(0, {tests!r})
import video_helpers as vh
from mattecli import registry
registry.list_models()
class Slow(vh.FakeTemporal):
    def predict_batch(self, batch):
        time.sleep(0.05)
        return super().predict_batch(batch)
vh.Slow = Slow
e = vh.ModelEntry(name="fake-slow", family="fake", summary="slow", adapter="video_helpers:Slow",
                  options={{"gain": vh.Option(4.0, "float")}})
registry.register(e)
from mattecli.cli.app import main
main(["video", {src!r}, "-m", "fake-slow", "-T", "rgba", "-o", {out!r}, "-b", "2", "-q"])
"""


