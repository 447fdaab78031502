"""Where a clip's outputs go (``-o`` / ``--template``), decided before anything is decoded.

* one clip and one output type: ``-o`` is the output itself: a video file (``.mp4 .mov .webm .mkv .m4v``), a folder
  (a PNG sequence) or a ``%06d.png`` pattern;
* otherwise ``-o`` is a folder and ``--template`` names the outputs under it (default ``{relpath}_{type}.{ext}``);
* ``-o`` containing ``{`` is itself the template;
* no ``-o``: the outputs go beside each clip (``--template``, default ``{dir}/{stem}_{type}.{ext}``).

Fields: ``{stem}`` ``{relpath}`` (path under the folder given, without extension) ``{name}`` ``{dir}`` (the clip's
folder) ``{model}`` ``{type}`` ``{ext}`` (``mp4`` for composite/alpha/foreground, ``mov`` for rgba).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..batch import Item
from ..errors import UsageError
from ..formats import VIDEO_WRITE_EXTS
from .encode_plan import DEFAULT_EXT
from .sequence import is_pattern

FIELDS = ("stem", "relpath", "name", "dir", "model", "type", "ext")
UNDER_FOLDER = "{relpath}_{type}.{ext}"
BESIDE_CLIP = "{dir}/{stem}_{type}.{ext}"


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
        return {t: self.pattern.format(**values, type=t, ext=DEFAULT_EXT[t].lstrip(".")) for t in self.types}
