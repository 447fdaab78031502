"""Streaming transfers into a ``.part`` file with the sha256 computed on the fly.

- :func:`fetch_url`: http(s) with ``Range`` resume of an existing ``.part``, a per-read timeout (a stalled connection
  fails after ``timeout`` seconds instead of hanging), refusal of HTML pages served in place of the file;
  ``file://`` URLs are read directly (no socket).
- :func:`copy_stream`: any readable binary stream -> ``.part`` (local paths, wheel members).

Progress: :class:`mattecli.progress.Progress` with ``unit="bytes"`` (only on a terminal). Every function returns a
:class:`Transfer` (sha256, size, resumed): a fresh transfer is hashed while it streams, a resumed one is hashed whole
once complete (:func:`mattecli.weights.file_sha256`); verification against the registry and the final
rename are the caller's job (see ``fetching.py``). Failures raise :class:`SourceFailed`; ``partial=True`` means the
``.part`` holds a clean prefix of the file worth resuming.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .integrity import file_sha256

CHUNK = 1 << 20  # read1() returns what has arrived, so a big chunk does not delay a stall timeout
USER_AGENT = "mattecli-weights/0.1 (+https://pypi.org/project/mattecli)"


class SourceFailed(Exception):
    """One source could not deliver the file; the caller moves on to the next source."""

    def __init__(self, message: str, *, partial: bool = False):
        super().__init__(message)
        self.partial = partial


@dataclass
class Transfer:
    sha256: str
    size: int
    resumed: bool = False


def default_timeout() -> float:
    try:
        return float(os.environ.get("MATTECLI_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def progress_bar(label: str, total: int | None, completed: int = 0, enabled: bool = True):
    """The tool's one progress bar in bytes (shown only on a terminal)."""
    from ..progress import Progress

    return Progress(label, total, unit="bytes", enabled=enabled, completed=completed)


# -- helpers ------------------------------------------------------------------------------------------------------
def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def write_sidecar(part: Path, key: str, expected_sha: str | None) -> None:
    """Record where the bytes of ``part`` come from (``key``: a URL, ``gdrive:<id>``), so that a later fetch resumes
    it only from the same place when no sha256 can catch a wrong prefix."""
    try:
        _sidecar(part).write_text(json.dumps({"url": key, "sha256": expected_sha}))
    except OSError:
        pass


def stray_parts(part: Path) -> list[Path]:
    """gdown's temporary files next to ``part``: ``<part name>`` + 8 characters + ``.part`` (left by a run that was
    killed or failed while gdown wrote them)."""
    if not part.parent.is_dir():
        return []
    n = len(part.name) + 8 + len(".part")
    return sorted(p for p in part.parent.iterdir()
                  if p.name.startswith(part.name) and p.name.endswith(".part") and len(p.name) == n and p.is_file())


def discard_part(part: Path) -> None:
    """Delete an interrupted download: the ``.part``, its sidecar and any gdown temporary file of it."""
    for p in (part, _sidecar(part), *stray_parts(part)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _fsync(f) -> None:
    f.flush()
    try:
        os.fsync(f.fileno())
    except OSError:
        pass


def copy_stream(src, part: Path, *, total: int | None, label: str, progress: bool = True) -> Transfer:
    """Copy a readable binary stream into ``part`` (truncated first), hashing as it goes."""
    h = hashlib.sha256()
    n = 0
    with open(part, "wb") as f, progress_bar(label, total, enabled=progress) as bar:
        while True:
            b = src.read(CHUNK)
            if not b:
                break
            f.write(b)
            h.update(b)
            n += len(b)
            bar.advance(len(b))
        _fsync(f)
    return Transfer(h.hexdigest(), n)


def copy_file(path: str | os.PathLike, part: Path, *, label: str, progress: bool = True) -> Transfer:
    p = Path(path)
    if not p.is_file():
        raise SourceFailed(f"{p}: no such file")
    try:
        with open(p, "rb") as src:
            return copy_stream(src, part, total=p.stat().st_size, label=label, progress=progress)
    except OSError as e:
        raise SourceFailed(f"{p}: {e.strerror or e}") from None


def is_network_url(url: str) -> bool:
    return urlparse(url).scheme.lower() not in ("file", "")


# -- http(s) ------------------------------------------------------------------------------------------------------
def can_resume(part: Path, url: str, expected_sha: str | None) -> bool:
    """A leftover .part is resumed when the final sha256 check will catch a wrong prefix (sha known), or when it
    provably came from the same place (``url``: the key its sidecar records)."""
    if not part.is_file() or part.stat().st_size == 0:
        return False
    if expected_sha:
        return True
    try:
        return json.loads(_sidecar(part).read_text()).get("url") == url
    except (OSError, ValueError):
        return False


def fetch_url(url: str, part: Path, *, expected_sha: str | None = None, filename: str = "",
              timeout: float | None = None, progress: bool = True, resume: bool = True) -> Transfer:
    """Download ``url`` into ``part``. Resumes an existing ``part`` with an HTTP Range request when possible."""
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, url2pathname, urlopen

    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    label = filename or Path(parsed.path).name or url
    if scheme == "file":
        return copy_file(url2pathname(parsed.path), part, label=label, progress=progress)
    if scheme not in ("http", "https"):
        raise SourceFailed(f"{url}: unsupported URL scheme {scheme!r} (use https://, http:// or file://)")
    timeout = default_timeout() if timeout is None else timeout

    offset = part.stat().st_size if resume and can_resume(part, url, expected_sha) else 0
    if not offset:
        discard_part(part)

    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as e:
        if e.code == 416 and offset:  # the .part may already be complete; let the sha256 check decide
            return Transfer(file_sha256(part), offset, resumed=True)
        raise SourceFailed(f"{url}: HTTP {e.code} {e.reason}", partial=bool(offset)) from None
    except URLError as e:
        reason = e.reason if not isinstance(e.reason, BaseException) else (str(e.reason) or type(e.reason).__name__)
        raise SourceFailed(f"{url}: {reason}", partial=bool(offset)) from None
    except (TimeoutError, socket.timeout):
        raise SourceFailed(f"{url}: no response within {timeout:g}s", partial=bool(offset)) from None
    except (OSError, http.client.HTTPException) as e:
        raise SourceFailed(f"{url}: {type(e).__name__}: {e}", partial=bool(offset)) from None

    with resp:
        status = getattr(resp, "status", 200)
        ctype = (resp.headers.get("Content-Type") or "").lower()
        if ctype.startswith("text/html") and not filename.lower().endswith((".html", ".htm")):
            raise SourceFailed(f"{url}: the server sent a web page (a sign-in, quota or confirmation page?), "
                               "not the file", partial=bool(offset))
        resumed = False
        if offset and status == 206:
            crange = resp.headers.get("Content-Range") or ""
            try:
                start = int(crange.split()[1].split("-")[0])
            except (IndexError, ValueError):
                start = -1
            if start != offset:
                raise SourceFailed(f"{url}: bad Content-Range {crange!r} for a resume at byte {offset}")
            resumed = True
            mode = "ab"
        else:  # fresh download (or the server ignored our Range header)
            offset = 0
            mode = "wb"
        h = hashlib.sha256()  # of the new bytes; a resumed file is hashed whole once complete
        length = resp.headers.get("Content-Length")
        body = int(length) if length and length.isdigit() else None
        total = None if body is None else body + offset
        write_sidecar(part, url, expected_sha)
        n = offset
        read = getattr(resp, "read1", None) or resp.read  # read1: hand over what arrived, do not wait for a full chunk
        with open(part, mode) as f, progress_bar(label, total, completed=offset, enabled=progress) as bar:
            while True:
                try:
                    b = read(CHUNK)
                except (TimeoutError, socket.timeout):
                    _fsync(f)
                    raise SourceFailed(f"{url}: connection stalled (no data for {timeout:g}s) after {n} bytes; "
                                       "the partial file is kept and the next fetch resumes it",
                                       partial=n > 0) from None
                except (OSError, http.client.HTTPException) as e:
                    _fsync(f)
                    raise SourceFailed(f"{url}: connection lost after {n} bytes ({type(e).__name__}); "
                                       "the next fetch resumes it", partial=n > 0) from None
                if not b:
                    break
                f.write(b)  # a local write error (disk full) is not a source failure: it propagates
                h.update(b)
                n += len(b)
                bar.advance(len(b))
            _fsync(f)
        if total is not None and n != total:
            raise SourceFailed(f"{url}: connection closed after {n} of {total} bytes", partial=n > 0)
    return Transfer(file_sha256(part) if resumed else h.hexdigest(), n, resumed=resumed)
