"""Where a clip's outputs go (``-o`` / ``--template``), decided before anything is decoded, and whether they are
already there (a re-run skips complete outputs; ``--overwrite`` replaces them).

* one clip and one output type: ``-o`` is the output itself: a video file (``.mp4 .mov .webm .mkv .m4v``), a folder
  (a PNG sequence) or a ``%06d.png`` pattern;
* otherwise ``-o`` is a folder and ``--template`` names the outputs under it (default ``{relpath}_{type}.{ext}``);
* ``-o`` containing ``{`` is itself the template;
* no ``-o``: as every verb (:class:`mattecli.batch.OutputPlan`): a clip named on the command line gets its outputs
  beside it (``clip.mp4`` -> ``clip_composite.mp4``; a ``%06d`` pattern: beside its folder), the clips found in a
  folder go to a sibling folder named after it (``clips/`` -> ``clips_video/``, sub-folders mirrored); ``--template``
  names them there.

Fields: ``{stem}`` ``{relpath}`` (path under the folder given, without extension) ``{name}`` ``{dir}`` (the clip's
folder) ``{model}`` ``{type}`` ``{ext}`` (``mp4`` for composite/alpha/foreground, ``mov`` for rgba).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..batch import Item, default_folder
from ..errors import UsageError
from ..formats import VIDEO_WRITE_EXTS
from .encode_plan import DEFAULT_EXT
from .sequence import PATTERN_RE, frame_files, is_pattern

FIELDS = ("stem", "relpath", "name", "dir", "model", "type", "ext")
UNDER_FOLDER = "{relpath}_{type}.{ext}"
BESIDE_CLIP = UNDER_FOLDER      # without -o: under the clip's folder, or the sibling <folder>_video/
VERB = "video"


def _fields() -> str:
    return " ".join("{" + f + "}" for f in FIELDS)


@dataclass
class OutputTargets:
    output: str | None
    template: str | None
    types: list
    clips: int = 1

    def __post_init__(self):
        out, n_types = self.output, len(self.types)
        self.direct = False
        if out == "-":
            raise UsageError("-o -: video outputs cannot go to standard output; give a file, a folder or a template")
        if out is not None and "{" in out:
            if self.template:
                raise UsageError("-o is already a template; drop --template (or give -o a folder)")
            self.pattern = out
        elif out is not None and self.clips == 1 and n_types == 1:
            self.direct = True
            self.pattern = out
        elif out is not None:
            ext = os.path.splitext(out.rstrip("/\\"))[1].lower()
            if ext in VIDEO_WRITE_EXTS + (".png",) or is_pattern(out):
                why = f"{self.clips} clips" if self.clips > 1 else "several --output-type values"
                raise UsageError(f"-o {out}: with {why} -o is a folder or a template; use e.g. "
                                 f"-o out/ or -o 'out/{{stem}}_{{type}}.{{ext}}'")
            if os.path.isfile(out):
                raise UsageError(f"-o {out}: exists and is not a folder; give a folder or a template")
            self.pattern = os.path.join(out, self.template or UNDER_FOLDER)
        else:
            self.pattern = self.template or BESIDE_CLIP
        self.beside = out is None
        if not self.direct:
            try:
                self.pattern.format(**{f: "x" for f in FIELDS})
            except (KeyError, IndexError, ValueError) as e:
                raise UsageError(f"output template {self.pattern!r}: unknown field {e}; use {_fields()}") from None
            if n_types > 1 and "{type}" not in self.pattern:
                raise UsageError(f"the output template {self.pattern!r} has no {{type}} field, so the {n_types} "
                                 "output types of a clip would write the same file; add {type}")

    def paths(self, item: Item, model: str = "") -> dict:
        """{output type: path} for one clip."""
        if self.direct:
            return {self.types[0]: self.pattern}
        src = os.fspath(item.path).rstrip("/\\")
        folder = os.path.dirname(os.path.abspath(src))
        name = os.path.basename(src)
        if is_pattern(src):           # frames/%06d.png: named after its folder, outputs beside that folder
            name = os.path.basename(folder) or "frames"
            folder = os.path.dirname(folder)
        values = {"stem": item.stem, "relpath": item.relstem, "name": name, "dir": folder, "model": model or "none"}
        where = ""
        if self.beside:
            if item.root is None:     # a clip named on the command line: beside it, named by its stem
                values["relpath"] = item.stem
                where = folder
            elif os.path.realpath(item.root) == os.path.realpath("."):
                where = os.path.abspath(".")
            else:
                where = os.fspath(default_folder(item.root, VERB))
        # an absolute template (or one starting with {dir}) wins over the folder
        return {t: os.path.join(where, self.pattern.format(**values, type=t, ext=DEFAULT_EXT[t].lstrip(".")))
                for t in self.types}


# -- outputs already there (re-runs) --------------------------------------------------------------------------------
def probe(target: str | os.PathLike) -> str:
    """The path whose existence says whether the output ``target`` is there: the file itself, a PNG-sequence folder
    that holds frames, or a pattern's first frame on disk. A target with nothing of it on disk gives a path that
    does not exist (an empty folder is not an output)."""
    t = os.fspath(target)
    if is_pattern(t):
        folder = os.path.dirname(t) or "."
        m = PATTERN_RE.search(os.path.basename(t))
        base = os.path.basename(t)
        rx = re.compile(re.escape(base[:m.start()]) + r"\d+" + re.escape(base[m.end():]) + "$")
        frames = [f for f in frame_files(folder) if rx.match(os.path.basename(f))]
        return frames[0] if frames else t
    if os.path.isdir(t) and not frame_files(t):
        return os.path.join(t, "%06d.png")       # does not exist
    return t


def output_complete(path: str | os.PathLike) -> bool:
    """True when an output found on disk is complete: a PNG sequence's frames decode (its first one), a video file
    opens and decodes a first frame. Outputs are moved into place only when finished (``*.partial.*`` before),
    so this catches files that are not ours or were damaged since."""
    from ..imaging.io import verify_decodes

    p = os.fspath(path)
    if os.path.isdir(p):
        frames = frame_files(p)
        return bool(frames) and verify_decodes(frames[0])
    if p.lower().endswith(".png"):
        return verify_decodes(p)
    try:
        import av

        with av.open(p) as c:
            if not c.streams.video:
                return False
            for _ in c.decode(video=0):
                return True
    except Exception:   # not a video, truncated, unreadable: not complete
        return False
    return False
