"""Input expansion: files, folders (recursive) and globs -> :class:`Item` list, in natural order.

* files are taken as given (any extension; decoded by content);
* folders are walked recursively for image files (:data:`mattecli.formats.IMAGE_EXTS`), hidden files and ``*.part``
  temp files skipped; a glob (``*``, ``?``, ``[``; ``**`` recurses) likewise;
* the path under a folder (or under a glob's fixed prefix) is kept as ``Item.rel``, so ``{relpath}`` mirrors the
  input tree in the outputs;
* order is natural (``img2`` before ``img10``), the same file given twice is processed once;
* a path that does not exist, or nothing found, is a usage error (exit 2).
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..formats import IMAGE_EXTS, TEMP_SUFFIX

MAX_LISTED = 8
STDIN = "-"
#: a file a run leaves in an output folder it creates inside an input folder: later walks skip that folder
OUTPUT_MARK = ".mattecli-outputs"
_DIGITS = re.compile(r"(\d+)")


def natural_key(s: str | os.PathLike):
    """Sort key for natural order: ``frame2`` < ``frame10``; case-insensitive; the path's parts in order."""
    return [int(t) if t.isdigit() else t.lower() for t in _DIGITS.split(os.fspath(s))]


def listed(names: Sequence[str]) -> str:
    """At most MAX_LISTED names, then "and N more"."""
    names = list(names)
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _is_pipe(p: Path) -> bool:
    """A FIFO or character device (``<(cat img.png)``, ``/dev/stdin``): read like a file."""
    import stat

    try:
        mode = p.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts) or rel.name.endswith(TEMP_SUFFIX)


@dataclass
class Item:
    """One input file and everything attached to it."""

    path: Path                                 # the input file as given/found
    rel: Path                                  # path relative to its folder/glob root (just the name for a file)
    partners: dict = field(default_factory=dict)  # kind -> Path ("trimap", "bg", "mask", "alpha", ...)
    info: dict = field(default_factory=dict)      # free space for verbs (size, timings...)
    problem: str | None = None                    # found while planning (no partner...): this item fails at run time
    root: Path | None = None                      # the folder / glob prefix it was found under (None: named itself)

    @property
    def is_stdin(self) -> bool:
        return str(self.path) == STDIN

    @property
    def stem(self) -> str:
        return self.rel.stem

    @property
    def relstem(self) -> str:
        """Relative path without extension, with forward slashes (``sub/img``)."""
        return self.rel.with_suffix("").as_posix()

    def __str__(self) -> str:
        return str(self.path)


def output_excludes(output: str | os.PathLike | None) -> list[Path]:
    """What a folder/glob expansion must skip so that a run's outputs are never picked up as inputs by the next run:
    the ``-o`` folder, the fixed folder in front of an ``-o`` template's first field, or the ``-o FILE`` itself."""
    if output is None:
        return []
    out = os.fspath(output)
    if "{" in out:
        fixed = []
        for part in Path(out).parts:
            if "{" in part:
                break
            fixed.append(part)
        return [Path(*fixed)] if fixed else [Path(".")]
    return [Path(out)]


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def expand_inputs(inputs: Sequence[str | os.PathLike], *, exts: Sequence[str] = IMAGE_EXTS,
                  what: str = "input", exclude: Sequence[str | os.PathLike] | None = None) -> list[Item]:
    """Expand files, folders (recursive) and globs into Items. Raises UsageError (exit 2) for paths that do not exist
    or when nothing is found.

    ``exclude`` (see :func:`output_excludes`): files found by walking a folder or a glob are skipped when they are
    one of these files or lie in one of these folders, unless that folder is the walked folder itself or contains it
    (``-o photos/`` with input ``photos/`` excludes nothing here; ``-o photos/out/`` skips ``photos/out/**``).
    Files named explicitly are never skipped."""
    exts = tuple(e.lower() for e in exts)
    items: list[Item] = []
    seen: set = set()
    missing: list[str] = []
    excl = [os.path.realpath(e) for e in (exclude or [])]

    def add(p: Path, rel: Path, root: Path | None = None) -> None:
        key = os.path.realpath(p)
        if key in seen:
            return
        if root is not None and excl:
            r = os.path.realpath(root)
            if any(_under(key, e) and not _under(r, e) for e in excl):
                return
        seen.add(key)
        items.append(Item(path=p, rel=rel, root=root))

    for raw in inputs:
        s = os.fspath(raw)
        p = Path(s)
        if s == STDIN:
            if len(inputs) > 1:
                raise UsageError("- (standard input) must be the only input")
            return [Item(path=p, rel=Path("stdin.png"))]
        if p.is_dir():
            marked = [m.parent for m in p.rglob(OUTPUT_MARK) if m.parent != p]   # earlier runs' output folders
            found = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts
                            and not _hidden(f.relative_to(p)) and not any(d in f.parents for d in marked)),
                           key=lambda f: natural_key(f.relative_to(p)))
            for f in found:
                add(f, f.relative_to(p), p)
        elif p.is_file() or _is_pipe(p):
            add(p, Path(p.name))
        elif _is_glob(s):
            matches = sorted(glob.glob(s, recursive=True), key=natural_key)
            # the glob's fixed prefix (folder part before the first magic component) is the mirroring root
            parts = Path(s).parts
            fixed = []
            for part in parts:
                if _is_glob(part):
                    break
                fixed.append(part)
            root = Path(*fixed) if fixed and len(fixed) < len(parts) else Path(".")
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                missing.append(s)
            for f in files:
                if f.suffix.lower() not in exts or f.name.startswith(".") or f.name.endswith(TEMP_SUFFIX):
                    continue
                try:
                    rel = f.relative_to(root)
                except ValueError:
                    rel = Path(f.name)
                add(f, rel, root)
        else:
            missing.append(s)
    if missing:
        raise UsageError(f"{what} not found: {listed(missing)}")
    if not items and excl and not missing:
        raise UsageError(f"no {what} files found in {', '.join(os.fspath(i) for i in inputs)} outside the output "
                         f"folder {', '.join(os.fspath(e) for e in exclude or [])}")
    if not items:
        raise UsageError(f"no {what} files found in {', '.join(os.fspath(i) for i in inputs)} "
                         f"(looked for {', '.join(exts)})")
    return items


