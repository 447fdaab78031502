"""Auxiliary frame feeds read in step with the clip: the background plate (``--bg``), the trimaps (``--trimap``) and
the picture behind the composite (``--composite-bg``).

Each is a still image (repeated for every frame) or a second video / image sequence decoded in its own thread. A
plate or trimap must have the clip's size; a composite background is fitted (cover: scaled to fill the frame, the
overflow cropped) and looped. Trimaps must come one per frame; a shorter plate holds its last frame (with a note).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InputError
from ..formats import IMAGE_EXTS
from .reader import SourceInfo, VideoSource
from .sequence import read_frame
from .threads import ThreadedReader


class FrameFeed:
    """Frames of a still image (repeated) or a second video read in step with the main one."""

    def __init__(self, path: str, info: SourceInfo, *, what: str, flag: str, gray: bool = False,
                 loop: bool = False, fit: bool = False, exact_count: bool = False):
        self.path, self.what, self.flag = path, what, flag
        self.size = (info.height, info.width)
        self.gray, self.loop, self.fit = gray, loop, fit
        self.still = None
        self.source = None
        self._reader = None
        self._last = None
        self.note = None
        self._count = 0
        if not os.path.exists(path) and "%" not in os.path.basename(path):
            raise InputError(f"{path}: no such file for {flag}", path=path)
        if os.path.isfile(path) and path.lower().endswith(IMAGE_EXTS):
            self.still = self._conform(read_frame(path, gray))
        else:
            self._open()
            if exact_count and self.source.info.kind == "sequence" and info.frame_count and \
                    self.source.info.frame_count < info.frame_count:
                raise InputError(f"{path}: {what} sequence has {self.source.info.frame_count} frames, the video has "
                                 f"{info.frame_count}; give one {what} per frame", path=path)

    def _open(self):
        self.source = VideoSource(self.path, what=self.what, gray=self.gray)
        si = self.source.info
        if not self.fit and (si.height, si.width) != self.size:
            h, w = self.size
            raise InputError(f"{self.path}: {self.what} is {si.width}x{si.height} but the video is {w}x{h}; "
                             f"pass a {self.what} of the same size to {self.flag}", path=self.path)
        self._reader = ThreadedReader(self.source.frames(), maxsize=8, name="mattecli-decode-aux")

    def _conform(self, img: np.ndarray) -> np.ndarray:
        h, w = self.size
        if img.shape[:2] == (h, w):
            return img
        if not self.fit:
            raise InputError(f"{self.path}: {self.what} is {img.shape[1]}x{img.shape[0]} but the video is {w}x{h}; "
                             f"pass a {self.what} of the same size to {self.flag}", path=self.path)
        import cv2

        ih, iw = img.shape[:2]
        s = max(h / ih, w / iw)          # cover: fill the frame, crop the overflow (keeps the aspect ratio)
        nh, nw = max(h, int(math.ceil(ih * s))), max(w, int(math.ceil(iw * s)))
        r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        y, x = (nh - h) // 2, (nw - w) // 2
        return np.ascontiguousarray(r[y:y + h, x:x + w])

    def next(self) -> np.ndarray:
        if self.still is not None:
            return self.still
        while True:
            try:
                fr = next(self._reader)
                self._count += 1
                self._last = self._conform(fr.image)
                return self._last
            except StopIteration:
                if self.loop and self._count:
                    self.close()
                    self._count = 0
                    self._open()
                    continue
                if self._last is None:
                    raise InputError(f"{self.path}: {self.what} has no frames", path=self.path) from None
                if self.gray:
                    raise InputError(f"{self.path}: {self.what} ran out of frames; give one {self.what} per video "
                                     "frame", path=self.path) from None
                if self.note is None:
                    self.note = f"{self.path}: {self.what} is shorter than the video; its last frame was held"
                return self._last

    def close(self):
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self.source is not None:
            self.source.close()
            self.source = None
