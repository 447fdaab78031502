"""Video evaluation inputs: a sequence is a folder of frames (natural order, as
:func:`mattecli.video.sequence.frame_files` lists them) or a video file (decoded with PyAV: the alpha plane when the
stream has one, otherwise the first colour channel).

``--pred``/``--gt`` are one sequence each (paired whatever their names) or folders holding several (video files
and/or sub-folders of frames), paired by name; a sequence without its partner is that item's problem.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..batch import Item, natural_key
from ..errors import InputError, UsageError
from ..formats import is_video_name
from ..video.sequence import frame_files


def is_video_file(path) -> bool:
    return os.path.isfile(path) and is_video_name(os.fspath(path))


def list_sequences(path, what: str, flag: str = "--pred") -> dict[str, str]:
    """{name: path} of the sequences under ``path``.

    A video file or a folder of frames is one sequence (named by its stem); a folder holding video files and/or
    sub-folders of frames is one sequence per entry.
    """
    path = os.fspath(path)
    if is_video_file(path):
        return {Path(path).stem: path}
    if not os.path.isdir(path):
        raise UsageError(f"{flag} {path}: {what} not found; pass a video file or a folder of frames", path=path)
    if frame_files(path):
        return {Path(path).name: path}
    out = {}
    for e in sorted(os.listdir(path), key=natural_key):
        p = os.path.join(path, e)
        if e.startswith("."):
            continue
        if is_video_file(p):
            out[Path(e).stem] = p
        elif os.path.isdir(p):
            out[e] = p
    if not out:
        raise UsageError(f"{flag} {path}: no frames, video files or sequence folders found in the {what}", path=path)
    return out


def pair_sequences(pred, gt) -> list[Item]:
    """Items (path = the predicted sequence, ``partners["gt"]``), named by sequence; a missing partner is a problem."""
    ps = list_sequences(pred, "prediction", "--pred")
    gs = list_sequences(gt, "ground truth", "--gt")
    if len(ps) == 1 and len(gs) == 1:  # one sequence each: pair them whatever their names
        (_, pp), (gn, gp) = next(iter(ps.items())), next(iter(gs.items()))
        return [Item(Path(pp), Path(gn), partners={"gt": Path(gp)})]
    items = []
    for name in sorted(set(ps) | set(gs), key=natural_key):
        if name not in ps:
            items.append(Item(Path(gs[name]), Path(name), problem=f"{gs[name]}: no predicted sequence named {name} "
                                                                  f"in {pred}; add it or remove the ground truth"))
        elif name not in gs:
            items.append(Item(Path(ps[name]), Path(name), problem=f"{ps[name]}: no ground-truth sequence named "
                                                                  f"{name} in {gt}; add it or remove the prediction"))
        else:
            items.append(Item(Path(ps[name]), Path(name), partners={"gt": Path(gs[name])}))
    return items


def read_sequence(path) -> list[np.ndarray]:
    """All frames of a sequence as HxW uint8 alphas (read as :func:`.datasets.read_alpha` reads them)."""
    from .datasets import read_alpha

    path = os.fspath(path)
    if is_video_file(path):
        return read_video_alpha(path)
    files = frame_files(path)
    if not files:
        raise InputError(f"{path}: no frames found; put the frames (PNG) in this folder", path=path)
    return [read_alpha(f) for f in files]


def read_video_alpha(path: str) -> list[np.ndarray]:
    """Decode a video with PyAV: the alpha plane when the pixel format has one, else the first colour channel."""
    import av

    frames = []
    last_t = None
    try:
        with av.open(path) as c:
            stream = c.streams.video[0]
            for fr in c.decode(stream):
                last_t = fr.time
                fmt = fr.format.name
                has_alpha = any(getattr(ch, "is_alpha", False) for ch in fr.format.components)
                if has_alpha:
                    frames.append(np.ascontiguousarray(fr.to_ndarray(format="rgba")[..., 3]))
                elif fmt in ("gray", "gray8", "gray16le", "gray16be"):
                    frames.append(np.ascontiguousarray(fr.to_ndarray(format="gray")))
                else:
                    frames.append(np.ascontiguousarray(fr.to_ndarray(format="rgb24")[..., 0]))
            short = _ended_early(stream, len(frames), last_t) if frames else None   # (the stream dies with c)
    except (av.error.FFmpegError, IndexError) as e:
        raise InputError(f"{path}: cannot decode video ({e}); re-encode it or pass a folder of PNG frames",
                         path=path) from None
    if not frames:
        raise InputError(f"{path}: no video frames decoded", path=path)
    if short:
        raise InputError(f"{path}: {short}; a truncated or damaged file: export it again", path=path)
    return frames


def _ended_early(stream, n: int, last_t: float | None) -> str | None:
    """The reader's rule (:mod:`mattecli.video.reader`): fewer frames than the container's own count, the last one
    more than 1.5 frame intervals before the end of the video stream."""
    from ..video.reader import _tag_seconds

    rate = float(stream.average_rate or stream.guessed_rate or 25)
    tb = stream.time_base
    dur = (float(stream.duration * tb) if stream.duration and tb
           else _tag_seconds((stream.metadata or {}).get("DURATION")))
    expected = stream.frames or (int(round(dur * rate)) if dur else 0)
    if not expected or n >= expected:
        return None
    if dur and last_t is not None:
        end = float((stream.start_time or 0) * tb) + dur if tb else dur
        if end - (last_t + 1 / rate) <= 1.5 / rate:
            return None
    elif not stream.frames:
        return None
    return f"only {n} of the container's {expected} frames decode"
