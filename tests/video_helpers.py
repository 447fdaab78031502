"""Helpers for the video tests: tiny synthetic clips made with PyAV, and fake backends.

Not a test module (no ``test_`` prefix); imported by tests/test_video_*.py.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from mattecli.backends.base import Backend, MatteResult
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
# fake backends
# ---------------------------------------------------------------------------------------------------------------
ENTRY_TEMPORAL = ModelEntry(name="fake-temporal", family="fake", summary="test: luma key with running state",
                            outputs=("alpha", "foreground"), temporal=True,
                            adapter="video_helpers:FakeTemporal", options={"gain": 4.0})
ENTRY_IMAGE = ModelEntry(name="fake-image", family="fake", summary="test: per-frame luma key",
                         adapter="video_helpers:FakeImage")
ENTRY_PLATE = ModelEntry(name="fake-plate", family="fake", summary="test: difference to a plate",
                         requires=frozenset({"background"}), adapter="video_helpers:FakePlate")
ENTRY_TRIMAP = ModelEntry(name="fake-trimap", family="fake", summary="test: trimap passthrough",
                          requires=frozenset({"trimap"}), adapter="video_helpers:FakeTrimap")


class FakeTemporal(Backend):
    """alpha_t = 0.5 * key(frame_t) + 0.5 * alpha_{t-1}: the state crosses batch boundaries."""

    def __init__(self, entry=ENTRY_TEMPORAL, wset=None, **options):
        super().__init__(entry, wset, **options)
        self.state = None
        self.calls: list[int] = []

    def reset(self):
        self.state = None

    def predict_batch(self, images, trimaps=None, backgrounds=None):
        import torch

        self.calls.append(int(images.shape[0]))
        outs = []
        for i in range(images.shape[0]):
            x = images[i:i + 1].float()
            luma = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
            a = ((luma - 0.45) * float(self.options["gain"])).clamp(0, 1)
            self.state = a if self.state is None else 0.5 * a + 0.5 * self.state
            outs.append(self.state)
        alpha = torch.cat(outs)
        return {"alpha": alpha, "foreground": images.float()}


class FakeImage(Backend):
    def __init__(self, entry=ENTRY_IMAGE, wset=None, **options):
        super().__init__(entry, wset, **options)

    def predict(self, image, trimap=None, background=None):
        x = np.asarray(image, np.float32)
        if x.max() > 1.5:
            x = x / 255.0
        luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
        return MatteResult(alpha=np.clip((luma - 0.45) * 4, 0, 1).astype(np.float32))


class FakePlate(Backend):
    def __init__(self, entry=ENTRY_PLATE, wset=None, **options):
        super().__init__(entry, wset, **options)

    def predict_batch(self, images, trimaps=None, backgrounds=None):
        assert backgrounds is not None and backgrounds.shape == images.shape
        d = (images.float() - backgrounds.float()).abs().amax(dim=1, keepdim=True)
        return {"alpha": (d * 4).clamp(0, 1)}


class FakeTrimap(Backend):
    def __init__(self, entry=ENTRY_TRIMAP, wset=None, **options):
        super().__init__(entry, wset, **options)

    def predict_batch(self, images, trimaps=None, backgrounds=None):
        assert trimaps is not None and trimaps.shape[1] == 1
        return {"alpha": trimaps.float()}


class OOMBackend(FakeTemporal):
    """Raises torch.OutOfMemoryError for batches larger than ``limit``."""

    limit = 1

    def predict_batch(self, images, trimaps=None, backgrounds=None):
        import torch

        if images.shape[0] > self.limit:
            self.calls.append(-int(images.shape[0]))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().predict_batch(images, trimaps, backgrounds)


class CrashBackend(FakeTemporal):
    """Raises after ``after`` frames (KeyboardInterrupt or RuntimeError)."""

    after = 8
    exc: type = KeyboardInterrupt

    def predict_batch(self, images, trimaps=None, backgrounds=None):
        done = sum(c for c in self.calls if c > 0)
        if done >= self.after:
            raise self.exc()
        return super().predict_batch(images, trimaps, backgrounds)


def register_fakes(monkeypatch):
    from mattecli import registry

    registry.list_models()  # load the real families first
    for e in (ENTRY_TEMPORAL, ENTRY_IMAGE, ENTRY_PLATE, ENTRY_TRIMAP):
        monkeypatch.setitem(registry._ENTRIES, e.name, e)
