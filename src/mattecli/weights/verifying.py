"""``models verify``: re-hash cached files against the registry's sha256 or the one recorded when they were stored.

Row statuses: ``ok``, ``converted-ok``; ``missing``, ``partial`` (an interrupted download) are informational;
``mismatch`` (hash differs), ``unknown-hash`` (no hash to check against: loads refuse it), ``converted-stale`` (made
from another file or for another family) and ``unreadable`` are bad (exit code 1).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ChecksumMismatch, ConverterError
from . import integrity
from .paths import converted_path, display_name, official_path, part_path, refetch_command

BAD = ("mismatch", "unknown-hash", "converted-stale", "unreadable")


@dataclass
class VerifyRow:
    name: str
    tag: str
    file: str
    status: str    # ok | mismatch | unknown-hash | missing | converted-ok | converted-stale | unreadable | partial
    detail: str = ""
    path: str = ""

    @property
    def bad(self) -> bool:
        return self.status in BAD

    def to_dict(self) -> dict:
        return asdict(self)


def _official_row(entry, wset, official: Path) -> tuple[VerifyRow, str | None]:
    """The row of the official file and the sha256 our converted file must have been made from."""
    name, fix = display_name(entry, wset), refetch_command(entry, wset)
    got = integrity.file_sha256(official)
    want = integrity.expected_sha(official, wset.sha256)

    def row(status, detail):
        return VerifyRow(name, wset.tag, wset.filename, status, detail, str(official))

    if want is None:
        return row("unknown-hash", f"registry has no sha256 and none was recorded (file sha256 {got}); loads refuse "
                                   f"it: run `{fix}`"), got
    if got == want:
        how = "" if wset.sha256 else " (recorded when first stored)"
        return row("ok", f"sha256 {got}{how}"), want
    return row("mismatch", f"sha256 {got}, expected {want}; run `{fix}`"), want


def _converted_row(entry, wset, conv: Path, source_sha: str | None) -> VerifyRow:
    from . import converted

    name, fix = display_name(entry, wset), refetch_command(entry, wset)

    def row(status, detail):
        return VerifyRow(name, wset.tag, conv.name, status, detail, str(conv))

    try:
        sd, meta, _ = converted.load_checked(conv, fix)
    except ChecksumMismatch as e:
        return row("mismatch", str(e))
    except ConverterError as e:
        return row("unreadable", str(e))
    made_from = meta.get("source_sha256")
    if meta.get("family") not in (None, entry.family):
        return row("converted-stale", f"converted for family {meta.get('family')}; run `{fix}`")
    want = source_sha or (wset.sha256.lower() if wset.sha256 else None)
    if want is not None and made_from != want:
        return row("converted-stale", f"made from sha256 {made_from}, expected {want}; run `{fix}`")
    return row("converted-ok", f"{len(sd)} tensors from sha256 {made_from}")


def verify_set(entry, wset) -> list[VerifyRow]:
    name = display_name(entry, wset)
    official, conv, part = official_path(entry, wset), converted_path(entry, wset), part_path(entry, wset)
    rows: list[VerifyRow] = []
    source_sha = None
    if official.is_file():
        row, source_sha = _official_row(entry, wset, official)
        rows.append(row)
    elif not conv.is_file():
        rows.append(VerifyRow(name, wset.tag, wset.filename, "missing", f"run `mattecli models fetch {name}`"))
    if conv.is_file():
        rows.append(_converted_row(entry, wset, conv, source_sha))
    if part.is_file():
        rows.append(VerifyRow(name, wset.tag, part.name, "partial",
                              f"interrupted download ({part.stat().st_size} bytes); `mattecli models fetch {name}` "
                              "resumes it", str(part)))
    return rows


def verify(pairs) -> list[VerifyRow]:
    rows: list[VerifyRow] = []
    for entry, wset in pairs:
        rows.extend(verify_set(entry, wset))
    return rows
