"""A PNG sequence output: numbered files (8 or 16 bit; RGB, grey or RGBA), fixed-width frame numbers, written into
a hidden folder of this run's own (``.NAME.<pid>-<random>.partial/``) and moved into place at the end; an interrupted
run keeps its frames as ``NAME.partial/``."""
from __future__ import annotations

import os
import shutil

import numpy as np

from ..errors import UsageError
from .encode_plan import EncodePlan
from .oserrors import OutputError, WRITE_ERRNO, ensure_parent, output_os_error, remove_quietly
from .reader import SourceInfo
from .sequence import PATTERN_RE
from .sinks import Sink, keep_partial as keep_as_partial, work_path


class PngSequenceSink(Sink):
    """Numbered PNG files (8 or 16 bit; RGB, gray or RGBA), fixed-width frame numbers."""

    def __init__(self, plan: EncodePlan, info: SourceInfo, notes: list[str] | None = None):
        self.plan = plan
        self.notes = notes if notes is not None else []
        t = plan.path
        m = PATTERN_RE.search(os.path.basename(t))
        n = info.frame_count or 0
        width = max(6, len(str(max(n - 1, 0))) if n else 6)
        if m:
            self.final_dir = os.path.dirname(t) or "."
            base = os.path.basename(t)
            self.prefix, self.suffix = base[:m.start()], base[m.end():]
            width = int(m.group(1) or 0) or width
            self.keep_dir = os.path.join(self.final_dir, f"{self.prefix.rstrip('_-.') or 'frames'}.partial")
        else:
            self.final_dir = t.rstrip("/\\") or "."
            self.prefix, self.suffix = "", ".png"
            self.keep_dir = self.final_dir + ".partial"
        self.tmp_dir = work_path(self.keep_dir[: -len(".partial")])   # unique to this run (the pipeline holds the lock)
        self.width = width
        if os.path.abspath(self.final_dir) == os.path.abspath(info.path) and info.kind == "sequence":
            raise UsageError(f"{t}: output would write into the input sequence folder; choose another -o")
        ensure_parent(self.tmp_dir)
        try:
            os.makedirs(self.tmp_dir)
        except OSError as e:
            if e.errno in WRITE_ERRNO:
                raise output_os_error(t, e) from None
            raise OutputError(f"{t}: cannot create {self.tmp_dir} ({e.strerror or e}); choose another -o",
                              path=t) from None
        self.names: list[str] = []
        self.info = info
        if info.kind == "video" and info.n_audio:
            self.notes.append(f"{t}: a PNG sequence carries no audio; the audio was not written there")

    def name(self, index: int) -> str:
        return f"{self.prefix}{index:0{self.width}d}{self.suffix}"

    def write(self, arr, pts, time_base, t) -> None:
        import cv2

        a = arr
        if self.plan.bits == 16 and a.dtype == np.uint8:
            a = a.astype(np.uint16) * 257
        elif self.plan.bits == 8 and a.dtype == np.uint16:
            a = (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        if a.ndim == 3:
            a = a[..., [2, 1, 0, 3]] if a.shape[2] == 4 else a[..., ::-1]
        name = self.name(self.frames_written)
        tmp = os.path.join(self.tmp_dir, "." + name + ".tmp.png")
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
        if not ok:
            raise OutputError(f"{os.path.join(self.tmp_dir, name)}: PNG encoding failed", path=self.plan.path)
        try:
            self._write_bytes(tmp, buf)
            os.replace(tmp, os.path.join(self.tmp_dir, name))
        except OSError as e:     # disk full, quota, I/O error: one line; the frames already written stay valid
            remove_quietly(tmp)
            raise output_os_error(self.plan.path, e) from None
        self.names.append(name)
        self.frames_written += 1

    @staticmethod
    def _write_bytes(path: str, data) -> None:
        with open(path, "wb") as f:
            f.write(memoryview(data))

    def finish(self) -> str:
        self._done = True
        if self.plan.alpha and self.names:
            import cv2

            probe = os.path.join(self.tmp_dir, self.names[0])
            a = cv2.imread(probe, cv2.IMREAD_UNCHANGED)
            if a is None or a.ndim != 3 or a.shape[2] != 4:
                raise OutputError(f"{probe}: written PNG has no alpha channel", path=probe)
        try:
            if not os.path.isdir(self.final_dir):
                os.replace(self.tmp_dir, self.final_dir)
            else:
                for n in self.names:
                    os.replace(os.path.join(self.tmp_dir, n), os.path.join(self.final_dir, n))
                shutil.rmtree(self.tmp_dir, ignore_errors=True)
        except OSError as e:
            raise output_os_error(self.plan.path, e, "cannot move the frames into place") from None
        if os.path.realpath(self.keep_dir) != os.path.realpath(self.final_dir) and os.path.isdir(self.keep_dir):
            shutil.rmtree(self.keep_dir, ignore_errors=True)      # an earlier interrupted run's partial frames
        return self.plan.path

    def abort(self, keep_partial: bool) -> str | None:
        if getattr(self, "_done", False):
            return None
        self._done = True
        if keep_partial and self.names:
            for f in os.listdir(self.tmp_dir):
                if f.startswith("."):
                    remove_quietly(os.path.join(self.tmp_dir, f))
            return keep_as_partial(self.tmp_dir, self.keep_dir)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        return None
