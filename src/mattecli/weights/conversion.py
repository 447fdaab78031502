"""Running the family's converter for the store, and writing its result as our ``<file>.mattecli.pt``.

The store never imports the backends: ``fetch``/``import_file`` receive ``convert(path) -> (our state dict, meta)``
from the caller (see ``mattecli.backends.install``). Whatever the converter raises becomes one ConverterError line
naming the file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import ConverterError, MatteError
from .paths import cache_dir, converted_path

Convert = Callable[[Path], tuple]


def run_convert(convert: Convert, wset, path: Path):
    """``convert(path)`` with its errors as one-line ConverterErrors naming the file."""
    try:
        return convert(path)
    except ConverterError as e:
        raise ConverterError(f"{path}: {e}" if str(path) not in str(e) else str(e), path=path) from None
    except MatteError:
        raise
    except ImportError as e:
        raise ConverterError(f"{path}: converting {wset.format} weights needs the Python package "
                             f"{e.name or e}: pip install {e.name or e}", path=path) from None
    except Exception as e:  # noqa: BLE001 - a corrupt file makes third-party parsers raise anything
        raise ConverterError(f"{path}: cannot convert these weights ({type(e).__name__}: {e})", path=path) from None


def convert_part(convert: Convert, wset, part: Path):
    """Convert a verified ``.part`` under its official file name (converters may look at the suffix), without
    making it visible in the cache yet: a hard link (or copy) in a private temporary folder."""
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=part.parent) as tmp:
        view = Path(tmp) / wset.filename
        try:
            os.link(part, view)
        except OSError:
            shutil.copyfile(part, view)
        try:
            return run_convert(convert, wset, view)
        except ConverterError as e:
            raise ConverterError(str(e).replace(str(view), wset.filename), path=wset.filename) from None


def store_converted(entry, wset, ours, meta, source_sha: str | None) -> Path:
    """Write our converted file (its sha256 recorded by :func:`.converted.save`) with the facts of its source."""
    from .. import __version__
    from . import converted

    cache_dir(entry, wset).mkdir(parents=True, exist_ok=True)
    target = converted_path(entry, wset)
    full_meta = dict(meta)
    full_meta.update({"family": entry.family, "entry": entry.name, "tag": wset.tag, "source_file": wset.filename,
                      "source_sha256": source_sha, "source_format": wset.format, "mattecli_version": __version__})
    converted.save(ours, target, full_meta)
    return target
