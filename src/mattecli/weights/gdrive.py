"""Google Drive sources, downloaded by the maintained ``gdown`` library.

- ``WeightSource("gdrive", "<file id>")``: one shared file (a Drive file URL works too);
- ``WeightSource("gdrive", "<folder id>", member="<name>")``: a file of a shared folder, found by its name, a path
  below the folder (``PyTorch/pytorch_resnet50.pth``) or a glob (``netG_epoch_*.pth``) that must match exactly one
  file; the folder is listed by ``gdown.download_folder(skip_download=True)``;
- any other ``http(s)://`` location is downloaded by gdown as a plain URL (mirrors, and the loopback tests).

Like the other kinds the bytes land in ``<file>.part`` (gdown writes ``<file>.part`` + 8 characters + ``.part`` and
renames it when complete), hashed while they arrive, checked against the registry's size on the way and sha256 by
the caller. A broken transfer keeps its bytes as ``<file>.part`` for the next fetch, which resumes it (gdown's Range
request) when a sha256 will catch a wrong prefix or the ``.part`` provably came from the same Drive file. The
``timeout`` (seconds without data) covers the folder listing, Drive's confirmation pages and the transfer. A web
page served instead of the file (quota exceeded, sign-in, virus-scan page) is refused. gdown's cookies file is not
used unless ``MATTECLI_GDRIVE_COOKIES`` names one (a browser export helps when Drive refuses anonymous downloads).
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from pathlib import Path

from .download import (SourceFailed, Transfer, can_resume, default_timeout, discard_part, progress_bar, stray_parts,
                       write_sidecar)

FILE_URL = "https://drive.google.com/file/d/{}/view"
FOLDER_URL = "https://drive.google.com/drive/folders/{}"
ADOPTED = "mattecli"   # 8 characters: our .part renamed the way gdown names its temporary file, so gdown resumes it
_ID = re.compile(r"^[-\w]{10,}$")
_FOLDER = re.compile(r"/drive/(?:u/\d+/)?folders/([-\w]{10,})")
_HTML = (b"<!doctype html", b"<html", b"<head", b"<?xml")


class _TooBig(Exception):
    pass


def address(src) -> str:
    """A link a person can open for this source."""
    loc = src.location.strip()
    if "://" in loc:
        return loc + (f" (file {src.member})" if src.member else "")
    if src.member:
        return FOLDER_URL.format(loc) + f" (file {src.member})"
    return FILE_URL.format(loc)


def describe(src) -> str:
    loc = src.location.strip()
    if src.member:
        return f"Google Drive folder {loc} file {src.member}"
    return f"Google Drive file {loc}" if "://" not in loc else f"gdrive {loc}"


def _gdown():
    try:
        import gdown
    except ImportError:
        raise SourceFailed("Google Drive sources need the Python package gdown: pip install gdown") from None
    return gdown


def _cookies() -> dict:
    path = os.environ.get("MATTECLI_GDRIVE_COOKIES", "").strip()
    return {"use_cookies": True, "cookies_file": os.path.expanduser(path)} if path else {"use_cookies": False}


def one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def explain(e: BaseException, where: str, timeout: float) -> str:
    """gdown's and requests' errors as one line saying what happened."""
    import requests

    gdown = _gdown()
    text = one_line(e)
    low = text.lower()
    if isinstance(e, gdown.exceptions.FileURLRetrievalError):
        if "too many users" in low or "quota" in low:
            return (f"{where}: Google Drive refuses the download for now (download quota exceeded: too many users "
                    "fetched this file recently); try again later, up to 24 hours")
        if "public link" in low or "permission" in low or "access" in low:
            return (f"{where}: Google Drive refuses the download (the file is no longer shared publicly, was "
                    "removed, or was fetched too often; try again later)")
        return f"{where}: Google Drive refuses the download ({text[:200]})"
    if isinstance(e, (requests.exceptions.Timeout, TimeoutError)) or "timed out" in low:
        return f"{where}: no data for {timeout:g} s (connection stalled or no answer)"
    if isinstance(e, requests.exceptions.HTTPError) and e.response is not None:
        return f"{where}: HTTP {e.response.status_code} {e.response.reason or ''}".rstrip()
    if isinstance(e, requests.exceptions.ConnectionError):
        return f"{where}: cannot connect ({text[:200]})"
    return f"{where}: {text}"


def _is_html(part: Path, filename: str) -> bool:
    if filename.lower().endswith((".html", ".htm", ".xml")):
        return False
    with open(part, "rb") as f:
        head = f.read(1024).lstrip().lower()
    return head.startswith(_HTML)


def match_member(files: list[tuple[str, str]], member: str, where: str) -> str:
    """The id of the one listed ``(id, path)`` that ``member`` names: the same path, a path ending with it, or a
    glob; SourceFailed when none or several match."""
    want = member.replace("\\", "/").strip("/")
    tests = (lambda p: p == want, lambda p: p.endswith("/" + want),
             lambda p: fnmatch.fnmatchcase(p, want) or fnmatch.fnmatchcase(p, "*/" + want))
    for test in tests:
        hits = [(i, p) for i, p in files if test(p)]
        if len(hits) == 1:
            return hits[0][0]
        if hits:
            raise SourceFailed(f"{where}: {member} matches several files ({', '.join(p for _, p in hits[:6])})")
    names = ", ".join(p for _, p in files[:8]) + (", ..." if len(files) > 8 else "")
    raise SourceFailed(f"{where}: no file {member} in the folder (it holds: {names or 'nothing visible'})")


def resolve(src, timeout: float) -> dict:
    """The keyword gdown.download needs for this source: ``{"id": ...}`` or ``{"url": ...}``."""
    gdown = _gdown()
    loc = src.location.strip()
    if "://" in loc:
        folder = _FOLDER.search(loc)
        if folder and not src.member:
            raise SourceFailed(f"gdrive {loc}: a folder; the registry must name the file (member)")
        if folder:
            loc = folder.group(1)
        else:
            file_id, _ = gdown.parse_url.parse_url(loc)
            return {"id": file_id} if file_id else {"url": loc}
    if not _ID.match(loc):
        raise SourceFailed(f"gdrive {loc!r}: not a Google Drive id")
    if not src.member:
        return {"id": loc}
    where = describe(src)
    try:
        listed = gdown.download_folder(id=loc, skip_download=True, quiet=True, timeout=timeout, **_cookies())
    except (ValueError, OSError, gdown.exceptions.DownloadError) as e:  # requests' errors are OSErrors
        raise SourceFailed(explain(e, f"Google Drive folder {loc}", timeout)) from None
    files = [(f.id, str(f.path).replace("\\", "/")) for f in listed or ()]
    return {"id": match_member(files, src.member, where)}


class _Bar:
    """gdown's ``progress(done, total)`` callback -> the tool's byte progress bar; aborts past the expected size."""

    def __init__(self, label: str, enabled: bool, limit: int | None, start: int):
        self.label, self.enabled, self.limit, self.done, self.bar = label, enabled, limit, start, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.limit is not None and done > self.limit:
            raise _TooBig(done)
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = progress_bar(self.label, total, completed=self.done).start()
        self.bar.advance(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _keep_partial(part: Path) -> bool:
    """After a failure: gdown's temporary file (the bytes received) becomes ``part`` again; True if it holds any."""
    strays = sorted(stray_parts(part), key=lambda p: p.stat().st_size)
    for p in strays[:-1]:
        p.unlink(missing_ok=True)
    if not strays or strays[-1].stat().st_size == 0:
        discard_part(part)
        return False
    os.replace(strays[-1], part)
    return True


def fetch_gdrive(src, part: Path, *, expected_sha: str | None = None, size: int | None = None, filename: str = "",
                 timeout: float | None = None, progress: bool = True, resume: bool = True) -> Transfer:
    """Download one Google Drive source into ``part``. Raises SourceFailed (``partial=True`` when ``part`` keeps
    bytes worth resuming)."""
    gdown = _gdown()
    import requests

    timeout = default_timeout() if timeout is None else timeout
    label = filename or part.name
    target = resolve(src, timeout)
    where = describe(src)
    key = "gdrive:" + next(iter(target.values()))
    for fresh in ((False, True) if resume else (True,)):
        for p in stray_parts(part):
            p.unlink(missing_ok=True)
        start = 0
        if not fresh and can_resume(part, key, expected_sha):
            start = part.stat().st_size
            os.replace(part, part.with_name(part.name + ADOPTED + ".part"))
        else:
            discard_part(part)
        write_sidecar(part, key, expected_sha)
        hasher = hashlib.sha256()
        bar = _Bar(label, progress, size, start)
        try:
            gdown.download(output=str(part), quiet=True, resume=start > 0, progress=bar, hasher=hasher,
                           timeout=timeout, **target, **_cookies())
        except _TooBig as e:
            discard_part(part)
            raise SourceFailed(f"{where}: more than the expected {size} bytes ({e.args[0]} received)") from None
        except gdown.exceptions.FileURLRetrievalError as e:
            discard_part(part)
            raise SourceFailed(explain(e, where, timeout)) from None
        except gdown.exceptions.DownloadError as e:
            if start and not fresh:   # e.g. the server did not honour the Range request: start over once
                continue
            discard_part(part)
            raise SourceFailed(explain(e, where, timeout)) from None
        except (requests.exceptions.RequestException, TimeoutError) as e:
            kept = _keep_partial(part)
            msg = explain(e, where, timeout)
            raise SourceFailed(msg + ("; the bytes received are kept and the next fetch resumes them" if kept else ""),
                               partial=kept) from None
        except ValueError as e:
            discard_part(part)
            raise SourceFailed(f"{where}: {one_line(e)}") from None
        except KeyboardInterrupt:
            _keep_partial(part)
            raise
        finally:
            bar.close()
        if not part.is_file():
            raise SourceFailed(f"{where}: gdown reported success but wrote no file")
        if _is_html(part, label):
            discard_part(part)
            raise SourceFailed(f"{where}: Google Drive sent a web page (a quota, sign-in or virus-scan page?), not the "
                               "file; try again later or download it by hand")
        return Transfer(hasher.hexdigest(), part.stat().st_size, resumed=start > 0)
    raise SourceFailed(f"{where}: the resumed download failed twice")  # pragma: no cover - the loop returns
