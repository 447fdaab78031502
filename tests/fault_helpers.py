"""Helpers for tests/test_fault_corpus.py: run the real CLI in a subprocess, check its stderr, and build the faulty
inputs (tiny images, clips, pickles, PNG headers) the corpus feeds it.

Not a test module (no ``test_`` prefix). Nothing here imports torch.
"""
from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np

ERROR = "mattecli: error:"


# ------------------------------------------------------------------------------------------------ running the CLI
def cli_env(home: Path, **extra: str) -> dict:
    """The environment of every run: a private cache home, offline, no colours, one thread."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MATTECLI_") and k not in ("FORCE_COLOR", "TERM", "PYTEST_XDIST_WORKER")}
    env.update(MATTECLI_HOME=str(home), MATTECLI_OFFLINE="1", NO_COLOR="1", OMP_NUM_THREADS="1",
               OMP_WAIT_POLICY="PASSIVE")
    env.update(extra)
    return env


def run_cli(args, cwd: Path, home: Path, *, stdin: bytes | None = None, env: dict | None = None,
            timeout: float = 120, preexec_fn=None) -> subprocess.CompletedProcess:
    """``python -m mattecli ARGS`` in ``cwd``; stdout as bytes, stderr as text."""
    p = subprocess.run([sys.executable, "-m", "mattecli", *[str(a) for a in args]], cwd=cwd,
                       env=env or cli_env(home), input=stdin if stdin is not None else b"", capture_output=True,
                       timeout=timeout, preexec_fn=preexec_fn)
    p.stderr = p.stderr.decode("utf-8", "replace")
    return p


def start_cli(args, cwd: Path, home: Path, *, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mattecli", *[str(a) for a in args]], cwd=cwd,
                            env=env or cli_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(ERROR)]


def expect_error(p, code: int, *needles: str, plain: bool = True) -> str:
    """The run exited with ``code``, printed exactly one ``mattecli: error:`` line holding every needle, and no
    traceback; with ``plain``, every stderr line is a ``mattecli:`` line (no usage block, no library noise)."""
    assert p.returncode == code, f"exit {p.returncode}, wanted {code}:\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    errors = error_lines(p.stderr)
    assert len(errors) == 1, f"wanted one error line:\n{p.stderr}"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    if plain:
        for ln in p.stderr.splitlines():
            assert ln.startswith("mattecli"), f"stray stderr line {ln!r}:\n{p.stderr}"
    return errors[0]


def expect_ok(p) -> None:
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and not error_lines(p.stderr), p.stderr


def litter(folder: Path) -> list[str]:
    """Temp files, lock files and partial outputs under ``folder`` (hidden ones included)."""
    folder = Path(folder)
    if not folder.exists():
        return []
    bad = []
    for p in folder.rglob("*"):
        n = p.name
        if n.endswith(".part") or n.endswith(".lock") or ".partial" in n or n.endswith(".part.json"):
            bad.append(str(p.relative_to(folder)))
    return sorted(bad)


def files_in(folder: Path) -> list[str]:
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


class LineReader:
    """Collects a stream's lines in a thread, so a test can wait for one with a timeout."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        self._t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._t.start()

    def _pump(self, stream):
        for ln in stream:
            self._q.put(ln)
        self._q.put(None)

    def wait_for(self, needle: str, timeout: float = 60) -> str | None:
        """The first line holding ``needle`` (None if the stream ended or the time ran out first)."""
        end = time.monotonic() + timeout
        for ln in self.lines:
            if needle in ln:
                return ln
        while True:
            try:
                ln = self._q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return None
            if ln is None:
                self._q.put(None)
                return None
            self.lines.append(ln)
            if needle in ln:
                return ln

    def rest(self, timeout: float = 60) -> str:
        self._t.join(timeout)
        while not self._q.empty():
            ln = self._q.get()
            if ln is not None:
                self.lines.append(ln)
        return "".join(self.lines)


class LockHolder:
    """Another process holding mattecli's output lock on ``path`` (a run writing it) until the block ends."""

    def __init__(self, path: Path, env: dict):
        self.path, self.env = str(path), env

    def __enter__(self):
        code = ("import sys\nfrom mattecli.batch.locks import output_lock\n"
                f"with output_lock({self.path!r}):\n    print('locked', flush=True)\n    sys.stdin.read()\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=self.env)
        line = self.proc.stdout.readline()
        assert line.strip() == "locked", self.proc.stderr.read()
        return self

    def __exit__(self, *exc):
        self.proc.communicate("", timeout=60)


# ------------------------------------------------------------------------------------------------------ images
def scene(size: int = 32):
    """A soft-edged disc over a gradient: (RGB uint8 image, its trimap 0/128/255)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    r = np.hypot(yy - c, xx - c)
    alpha = np.clip((size * 0.33 - r) / (size * 0.1), 0, 1)[..., None]
    fg = np.array([210, 120, 60], np.float32)
    bg = np.stack([20 + xx * 3, 60 + yy * 2, 140 - xx], axis=2)
    img = (alpha * fg + (1 - alpha) * bg).round().clip(0, 255).astype(np.uint8)
    trimap = np.full((size, size), 128, np.uint8)
    trimap[r <= size * 0.15] = 255
    trimap[r >= size * 0.42] = 0
    return img, trimap


def write_png(path: Path, a: np.ndarray) -> Path:
    """RGB(A) or grey array (uint8 or uint16) to PNG with OpenCV."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[..., ::-1]
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(a)), path
    return path


def read_any(path) -> np.ndarray:
    import cv2

    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert a is not None, path
    return a


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny, well-formed-looking PNG whose header declares ``width`` x ``height`` grey pixels (a decompression
    bomb's header: a few hundred bytes on disk)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9)) \
        + chunk(b"IEND", b"")
    Path(path).write_bytes(data)
    return Path(path)


# ----------------------------------------------------------------------------------------------------- weights
class _MakeFolder:
    """Unpickling this calls os.mkdir(marker): a checkpoint that runs code when loaded unsafely."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def malicious_pickle(path: Path, marker: Path) -> Path:
    Path(path).write_bytes(pickle.dumps({"state_dict": {"conv1_1.weight": _MakeFolder(str(marker))}}, protocol=2))
    return Path(path)


def random_bytes(path: Path, n: int = 4096, seed: int = 7) -> Path:
    Path(path).write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return Path(path)


# ------------------------------------------------------------------------------------------------------ clips
def frame_rgb(i: int, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([30 + xx * 2, 40 + yy * 2, 90 + 0 * xx], axis=2).astype(np.uint8)
    x0 = (2 * i) % (w // 2)
    img[h // 4:3 * h // 4, x0:x0 + w // 3] = (235, 215, 190)
    return img


def write_clip(path: Path, n: int = 6, w: int = 64, h: int = 48, *, pts: list[int] | None = None,
               time_base=None, rotation: int = 0, options: dict | None = None, keyint: int = 5) -> Path:
    """An H.264 clip of ``n`` frames (``pts`` in ``time_base`` for variable frame rates; ``rotation`` stores the
    frames turned by it with a display matrix that turns them back; ``options`` for the muxer, e.g. faststart)."""
    import av
    from fractions import Fraction

    tb = Fraction(time_base) if time_base else Fraction(1, 25)
    stamps = pts if pts is not None else list(range(n))
    out = av.open(str(path), "w", options=options or {})
    st = out.add_stream("libx264", rate=25)
    st.width, st.height = (h, w) if rotation % 180 else (w, h)
    st.pix_fmt = "yuv420p"
    st.time_base = tb
    st.codec_context.time_base = tb
    st.options = {"crf": "12", "preset": "ultrafast", "x264-params": f"log-level=error:keyint={keyint}"}
    if rotation:
        st.set_display_rotation(rotation)
    for i, p in enumerate(stamps):
        img = frame_rgb(i, w, h)
        if rotation:
            img = np.ascontiguousarray(np.rot90(img, rotation // 90))
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts, f.time_base = p, tb
        for pk in st.encode(f):
            out.mux(pk)
    for pk in st.encode(None):
        out.mux(pk)
    out.close()
    return Path(path)


def _tone(stream, seconds: float = 0.2):
    import av

    rate = 48000
    snd = (0.1 * np.sin(np.arange(int(rate * seconds)) / rate * 2 * np.pi * 440)).astype(np.float32)[None]
    f = av.AudioFrame.from_ndarray(snd, format="flt", layout="mono")
    f.sample_rate, f.pts = rate, 0
    return list(stream.encode(f)) + list(stream.encode(None))


def audio_only(path: Path) -> Path:
    import av

    out = av.open(str(path), "w")
    a = out.add_stream("aac", rate=48000)
    a.layout = "mono"
    for pk in _tone(a):
        out.mux(pk)
    out.close()
    return Path(path)


def zero_frame_clip(path: Path) -> Path:
    """A Matroska file with a video stream that holds no frame (and an audio stream that holds sound)."""
    import av

    out = av.open(str(path), "w")
    v = out.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    a = out.add_stream("aac", rate=48000)
    a.layout = "mono"
    for pk in _tone(a):
        out.mux(pk)
    out.close()
    return Path(path)


def decode_times(path: Path) -> tuple[list[float], int]:
    """(frame times in seconds, the first frame's display rotation) of a video file."""
    import av

    with av.open(str(path)) as c:
        times, rotation = [], None
        for f in c.decode(video=0):
            if rotation is None:
                rotation = int(round(f.rotation or 0))
            times.append(float(f.pts * f.time_base))
    return times, rotation or 0


def trimap_frames(folder: Path, n: int, w: int = 64, h: int = 48) -> Path:
    """``n`` per-frame trimaps 000000.png ... for a ``w`` x ``h`` clip."""
    t = np.zeros((h, w), np.uint8)
    t[h // 6:5 * h // 6, w // 8:7 * w // 8] = 128
    t[h // 3:2 * h // 3, w // 3:2 * w // 3] = 255
    for i in range(n):
        write_png(Path(folder) / f"{i:06d}.png", t)
    return Path(folder)
