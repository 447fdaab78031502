"""``--model auto``: the registry's choice for the inputs given, the same rule for every verb (no torch here).

Among the matting models that can run now (no weights needed, or weights cached), by the registry's ``quality``:

* a background plate given -> the best background-plate model;
* a trimap given -> the best trimap model, else ``closed-form`` (needs no weights);
* nothing given -> the best trimap-free model.

For video (``temporal=True``) a temporal model (RVM) is preferred over an image model of any quality, since it is
stable from frame to frame. When no candidate can run now but one has an automatic weights source and fetching is
allowed (not ``--offline`` / ``--no-fetch``), the best of those is chosen: its weights arrive by themselves. Nothing
runnable: a usage error that says what to pass or fetch.
"""
from __future__ import annotations

from .errors import UsageError


def runnable_name(entry) -> str | None:
    """Name to load (with weight tag) if this entry can run now (no weights needed or weights cached), else None."""
    if not entry.implemented or not entry.adapter:
        return None
    if not entry.weights:
        return entry.name
    from .weights import cached_path

    for i, w in enumerate(entry.weights):
        if cached_path(entry, w) is not None:
            return entry.name if i == 0 else f"{entry.name}.{w.tag}"
    return None


def fetchable_name(entry) -> str | None:
    """The entry's default weight set when it has an automatic source and fetching is allowed, else None."""
    if not entry.implemented or not entry.adapter or not entry.weights:
        return None
    from .backends.install import auto_fetch_allowed
    from .weights.sources import fetchable

    if auto_fetch_allowed() and any(fetchable(s) for s in entry.weights[0].sources):
        return entry.name
    return None


def pick_auto(has_trimap: bool, has_bg: bool, temporal: bool = False) -> tuple[str, str]:
    """(model name, reason). Raises UsageError saying what to pass or fetch."""
    from .registry import list_models

    entries = list_models(kind="matting")

    def best(pred):
        for how in (runnable_name, fetchable_name):
            cands = []
            for order, e in enumerate(entries):
                if pred(e):
                    name = how(e)
                    if name:
                        cands.append((-(temporal and e.temporal), -e.quality, order, name))
            if cands:
                return sorted(cands)[0][-1]
        return None

    if has_bg:
        name = best(lambda e: "background" in e.requires and not ("trimap" in e.requires and not has_trimap))
        if name:
            return name, "a background plate was given"
        if not has_trimap:
            fetch = [e.name for e in entries if "background" in e.requires and e.implemented]
            raise UsageError("--model auto: a background plate was given but no background-matting model has cached "
                             f"weights; run `mattecli models fetch {fetch[0] if fetch else 'bgmv2'}` or name a model")
    if has_trimap:
        name = best(lambda e: "trimap" in e.requires and "background" not in e.requires)
        if name:
            return name, "a trimap was given"
    name = best(lambda e: not e.requires)
    if name:
        return name, "no trimap or plate was given"
    free = [e.name for e in sorted(entries, key=lambda e: (-(temporal and e.temporal), -e.quality))
            if not e.requires and e.implemented and e.weights]
    hint = f"run `mattecli models fetch {free[0]}`, " if free else ""
    raise UsageError("--model auto: no trimap or background plate was given and no trimap-free model has cached "
                     f"weights; {hint}or pass --trimap FILE|DIR (make one with `mattecli trimap`) to use closed-form")
