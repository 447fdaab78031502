"""Small shared helpers for the foundation tests (image I/O, trimaps, classical matting, batch CLI)."""
from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@lru_cache(maxsize=None)
def synthetic_module():
    spec = importlib.util.spec_from_file_location("_make_synthetic", ROOT / "examples" / "make_synthetic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@lru_cache(maxsize=None)
def small_example(size: int = 48, seed: int = 3) -> dict:
    """The synthetic hair example at a small size (dict of uint8 arrays)."""
    return synthetic_module().generate(size=size, seed=seed, band=2)


def write_example(folder: Path, name: str = "hair", size: int = 48, seed: int = 3, parts=("image", "trimap")) -> dict:
    """Write the small example's files into ``folder``; returns {part: path}."""
    from mattecli.imaging.io import write_image

    ex = small_example(size, seed)
    folder.mkdir(parents=True, exist_ok=True)
    key = {"image": "hair", "trimap": "hair_trimap", "alpha": "hair_alpha", "fg": "hair_fg", "bg": "hair_bg"}
    out = {}
    for part in parts:
        suffix = "" if part == "image" else f"_{part}"
        p = folder / f"{name}{suffix}.png"
        write_image(p, ex[key[part]])
        out[part] = p
    return out


def runner():
    from typer.testing import CliRunner

    return CliRunner()


def invoke(*args, env=None):
    """Run the Typer app in-process; returns click's Result (stdout / stderr separate)."""
    from mattecli.cli.app import app

    return runner().invoke(app, [str(a) for a in args], env=env or {"NO_COLOR": "1"})


def one_line_error(result) -> str:
    """The stderr of a failed run must be exactly one 'mattecli: error:' line (plus optional summary lines)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("mattecli: error:")]
    assert len(lines) >= 1, result.stderr
    for ln in result.stderr.splitlines():
        assert ln.startswith("mattecli:"), f"unexpected stderr line: {ln!r}"
    return lines[0]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in Path(folder).rglob("*") if p.name.endswith(".part")]
