"""Licence notices for weight sets: printed before every fetch/import, flagged in ``models info/licenses``."""
from __future__ import annotations

import re

from .paths import display_name

_NC = re.compile(r"non[- ]?commercial|\bnc\b|-nc\b|research[- ]only|academic|no commercial|personal use", re.I)
_GPL = re.compile(r"\b(a|l)?gpl\b|gnu (affero |lesser )?general public", re.I)
_UNKNOWN = re.compile(r"(unknown|unspecified|none|not stated|\?)", re.I)


def license_flags(text: str) -> list[str]:
    """Flags from the licence's leading statement (text in parentheses is commentary, e.g. history)."""
    head = (text or "").split("(")[0].strip()
    flags = []
    if _NC.search(head):
        flags.append("non-commercial")
    if _GPL.search(head):
        flags.append("copyleft (GPL)")
    if not head or _UNKNOWN.match(head):
        flags.append("unknown")
    return flags


def license_notice(entry, wset) -> str:
    lic = wset.license or "unknown"
    msg = f"licence of the {display_name(entry, wset)} weights ({wset.filename}): {lic}"
    flags = license_flags(lic)
    if "non-commercial" in flags:
        msg += " -- NON-COMMERCIAL: research/personal use only; do not use these weights in a commercial product"
    if "copyleft (GPL)" in flags:
        msg += " -- GPL: works you distribute that include these weights must be GPL-compatible"
    if "unknown" in flags:
        msg += " -- the authors state no licence for the weights: ask them before any commercial use"
    if entry.code_license:
        msg += f"; code licence: {entry.code_license}"
    return msg
