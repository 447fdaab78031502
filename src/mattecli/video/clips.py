"""The clips of a ``video`` run: inputs expanded into one :class:`~mattecli.batch.Item` per clip, and their partner
plates / trimaps.

* a video file (any extension; decoded by content) is one clip;
* a ``%06d`` pattern, or a folder that directly holds image files, is one image-sequence clip;
* any other folder is walked (recursively, natural order) for video files (:data:`mattecli.formats.VIDEO_EXTS`) and
  for sub-folders of frames, each one clip; a glob likewise;
* hidden files, ``*.partial.*`` leftovers of interrupted runs and the ``-o`` folder are skipped.

``Item.rel`` is the clip's path under the folder walked (a sequence: its folder), for ``{relpath}`` in templates;
``Item.root`` that folder (or a glob's fixed folder), None for a clip named on the command line (its outputs then go
beside it by default; see :mod:`.targets`).
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Sequence

from ..batch import Item, listed, natural_key
from ..errors import UsageError
from ..formats import IMAGE_EXTS, VIDEO_EXTS
from .sequence import frame_files, is_pattern


def _skipped(name: str) -> bool:
    return name.startswith(".") or ".partial." in name or name.endswith((".partial", ".part"))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _walk(root: Path, excl: list[str]) -> list[tuple[Path, Path]]:
    """(clip path, rel) under ``root``: video files and folders of frames; no descent into a folder of frames."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = sorted((n for n in dirnames if not _skipped(n)
                              and not any(_under(os.path.realpath(d / n), e) for e in excl)), key=natural_key)
        keep = []
        for n in dirnames:
            if frame_files(d / n):
                found.append((d / n, (d / n).relative_to(root)))
            else:
                keep.append(n)
        dirnames[:] = keep
        for n in filenames:
            if not _skipped(n) and n.lower().endswith(VIDEO_EXTS):
                found.append((d / n, (d / n).relative_to(root)))
    return sorted(found, key=lambda f: natural_key(f[1]))


def _glob_root(pattern: str) -> Path:
    """The folder in front of a glob's first magic component (``clips/**/*.mp4`` -> ``clips``)."""
    fixed = []
    for part in Path(pattern).parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def expand_clips(inputs: Sequence[str | os.PathLike], exclude: Sequence[str | os.PathLike] = ()) -> list[Item]:
    """Inputs -> one Item per clip. A path that does not exist, or nothing found, is a usage error (exit 2)."""
    items: list[Item] = []
    seen: set = set()
    missing: list[str] = []
    excl = [os.path.realpath(e) for e in exclude]

    def add(p: Path, rel: Path, root: Path | None = None) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            items.append(Item(path=p, rel=rel, root=root))

    for raw in inputs:
        s = os.fspath(raw)
        p = Path(s)
        if p.is_file():
            add(p, Path(p.name))
        elif is_pattern(s):
            add(p, Path(p.parent.name or "frames"))   # a frame pattern: named after its folder
        elif p.is_dir():
            if frame_files(p):
                add(p, Path(p.resolve().name))
                continue
            clips = _walk(p, [e for e in excl if not _under(os.path.realpath(p), e)])
            if not clips:
                raise UsageError(f"{s}: no video files or folders of frames found (looked for "
                                 f"{', '.join(VIDEO_EXTS)} and folders of {', '.join(IMAGE_EXTS)})")
            for c, rel in clips:
                add(c, rel, p)
        elif any(ch in s for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(s, recursive=True), key=natural_key)
                       if not _skipped(os.path.basename(m))]
            hits = [m for m in matches if (m.is_file() and m.name.lower().endswith(VIDEO_EXTS))
                    or (m.is_dir() and frame_files(m))]
            if not hits:
                missing.append(s)
            root = _glob_root(s)
            for m in hits:
                if not any(_under(os.path.realpath(m), e) for e in excl):
                    try:
                        add(m, m.relative_to(root), root)
                    except ValueError:
                        add(m, Path(m.name), root)
        else:
            missing.append(s)
    if missing:
        raise UsageError(f"input not found: {listed(missing)}; pass video files, folders of frames, "
                         "frame patterns (frames/%06d.png) or folders of clips")
    if not items:
        raise UsageError(f"no clips found in {', '.join(os.fspath(i) for i in inputs)}")
    return items


def _entries(folder: Path) -> dict:
    """stem (lower case) -> the files (images, videos) and sub-folders directly in ``folder``."""
    out: dict = {}
    for e in sorted(folder.iterdir(), key=lambda x: natural_key(x.name)):
        if _skipped(e.name):
            continue
        if e.is_dir() or e.name.lower().endswith(IMAGE_EXTS + VIDEO_EXTS):
            out.setdefault((e.name if e.is_dir() else e.stem).lower(), []).append(e)
    return out


def pair_clips(items: list[Item], spec: str | None, kind: str, flag: str) -> None:
    """Attach ``item.partners[kind]`` (a path string) from ``--bg`` / ``--trimap``.

    A file or a ``%06d`` pattern serves every clip. A folder holding an entry named after the clip (``plates/a.png``,
    ``plates/a.mp4``, ``trimaps/a/``; also ``a_bg``, ``a_trimap``...) gives each clip its own; with a single clip and
    no such entry, the folder itself is that clip's sequence (frames). A clip without a partner fails at run time."""
    if spec is None:
        return
    from ..batch import SUFFIXES, strip_suffix

    sp = Path(spec)
    if not sp.exists() and not is_pattern(spec):
        raise UsageError(f"{flag} {spec}: not found; pass an image, a video, a folder of frames or a pattern")
    if sp.is_file() or is_pattern(spec):
        for it in items:
            it.partners[kind] = spec
        return
    table = _entries(sp)
    for stem, found in list(table.items()):
        base = strip_suffix(stem, SUFFIXES.get(kind, ()))
        if base:
            table.setdefault(base.lower(), found)
    for it in items:
        hits = table.get(it.stem.lower(), [])
        if len(hits) == 1:
            it.partners[kind] = str(hits[0])
        elif len(hits) > 1:
            it.problem = it.problem or f"{flag}: several candidates for {it.path} in {sp}: " \
                                       f"{', '.join(str(h) for h in hits[:3])}; keep one per clip"
        elif len(items) == 1:
            it.partners[kind] = spec
        else:
            it.problem = it.problem or (f"{flag}: nothing for {it.path} in {sp} (pairing is by name: "
                                        f"{sp / it.stem}.png, {sp / it.stem}.mp4 or a folder {sp / it.stem}/)")
    used = {os.path.realpath(p) for it in items for p in [it.partners.get(kind)] if p}
    items[:] = [it for it in items if os.path.realpath(it.path) not in used]   # a partner is not a clip
    if not items:
        raise UsageError(f"{flag} {spec}: holds every input clip; keep the {kind}s apart from the clips")
