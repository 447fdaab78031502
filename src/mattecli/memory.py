"""The memory guard: estimate a prediction's peak memory from the input size, refuse before allocating it.

Each registry entry carries a measured :class:`~mattecli.registry.MemoryModel` (``benchmarks/memory.py`` measures
the constants: peak RSS above the loaded model against the pixel count, a few sizes per family). Before a model's
work on an item, :func:`check` compares ``estimate * SAFETY`` with what is free:

* the host: ``MemAvailable`` of ``/proc/meminfo`` and the cgroup's limit minus its usage (v2 ``memory.max`` /
  ``memory.current``, v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``), the smaller of them;
* a CUDA device: its free memory (``torch.cuda.mem_get_info``) plus what torch's caching allocator holds unused.

``MATTECLI_MEMORY`` overrides the host figure (``8G``, ``512M``, a number of bytes) or turns the guard off (``off``).

A refusal is one line (:class:`TooLarge`, an :class:`~mattecli.errors.InputError`: exit 1 for that item, a batch goes
on) naming the file, the estimate, what is available and the ways out: ``--max-side N`` (the largest long side that
fits), ``--option tile=N`` where the family tiles, and lighter models that fit. Images are checked from their header
(:func:`check_decode`, :func:`check_file`) before they are decoded.
"""
from __future__ import annotations

import functools
import os
import threading
from typing import Any, Mapping

from .errors import InputError

SAFETY = 1.25          # the measured peaks are scaled by this before the comparison (allocator slack, other threads)
RESERVE = 256 << 20    # bytes left free for the interpreter, the encoders of the outputs and the rest of the system
MIN_SIDE = 64          # no --max-side suggestion below this


class TooLarge(InputError):
    """The estimated peak memory of an item exceeds what is available."""


# ------------------------------------------------------------------------------------------------ what is free
def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            s = f.read().strip()
    except OSError:
        return None
    return int(s) if s.isdigit() else None


def _cgroup_free() -> int | None:
    """limit - usage of this process's memory cgroup (v2, else v1); None without a limit."""
    rel = ""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0":
                    rel = parts[2]
    except OSError:
        pass
    free = []
    for base in {os.path.join("/sys/fs/cgroup", rel.lstrip("/")), "/sys/fs/cgroup"}:
        limit, used = _read_int(os.path.join(base, "memory.max")), _read_int(os.path.join(base, "memory.current"))
        if limit is not None and used is not None:
            free.append(limit - used)
    limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    used = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if limit is not None and used is not None and limit < 1 << 60:
        free.append(limit - used)
    return max(0, min(free)) if free else None


def parse_bytes(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GB"``, ``"1000000"`` -> bytes (binary multiples)."""
    s = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
    return int(float(s[:-1] if mult > 1 else s) * mult)


def available_bytes() -> int | None:
    """Host memory this process may still allocate, less RESERVE (None: unknown, or the guard is off);
    ``MATTECLI_MEMORY`` as given."""
    env = os.environ.get("MATTECLI_MEMORY", "").strip()
    if env:
        if env.lower() in ("off", "0", "none", "no"):
            return None
        try:
            return parse_bytes(env)
        except ValueError:
            pass
    figures = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    figures.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    cg = _cgroup_free()
    if cg is not None:
        figures.append(cg)
    return max(0, min(figures) - RESERVE) if figures else None


def device_free_bytes(device: Any) -> int | None:
    """Free memory of a CUDA device (None for the CPU and other devices)."""
    if "cuda" not in str(device):
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return max(0, int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)) - RESERVE)


def human(n: float) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{max(n, 0) / (1 << 20):.0f} MB"


# ------------------------------------------------------------------------------------------------ estimates
def _unknown_stats(trimap, h: int, w: int, margin: int) -> tuple[float, float]:
    """(unknown pixels, pixels of their bounding box grown by ``margin``) of one HxW trimap (0/128/255)."""
    import numpy as np

    t = trimap.cpu().numpy() if hasattr(trimap, "cpu") else np.asarray(trimap)
    t = t.reshape(t.shape[-2:])
    unk = t == 128
    n = int(np.count_nonzero(unk))
    if not n:
        return 0.0, 0.0
    rows, cols = np.flatnonzero(unk.any(axis=1)), np.flatnonzero(unk.any(axis=0))
    bh = min(h, rows[-1] + margin + 1) - max(0, rows[0] - margin)
    bw = min(w, cols[-1] + margin + 1) - max(0, cols[0] - margin)
    return float(n), float(bh * bw)


def _opt(options: Mapping[str, Any], name: str):
    return options.get(name) if name else None


def network_pixels(mem, options: Mapping[str, Any], h: int, w: int) -> float:
    """N of the memory model: the pixels the network works on (see MemoryModel.net)."""
    v = _opt(options, mem.net_option)
    if v is None and mem.net_default:
        v = mem.net_default
    rule = mem.net
    if rule == "tile" and v:             # tiles of v px, their overlap inside
        return float(min(h, int(v)) * min(w, int(v)))
    if rule == "scale":
        if v is None:                    # RVM's automatic ratio, made monotone: never below the largest full-size run
            from .backends.rvm.ratio import SMALL, auto_downsample_ratio

            n = float(h * w) * auto_downsample_ratio(h, w) ** 2
            return max(n, SMALL * SMALL * min(h, w) / max(h, w)) if max(h, w) > SMALL else n
        return float(h * w) * float(v) ** 2
    if rule == "clamp" and v:
        return float(min(h, int(v)) * min(w, int(v)))
    if rule in ("short_side", "ref_side") and v:
        s, short = float(v), min(h, w)
        if short > s or (rule == "ref_side" and max(h, w) < s):
            return float(h * w) * (s / short) ** 2
    return float(h * w)


def model_of(entry, options: Mapping[str, Any]):
    """The entry's MemoryModel for these options (None: not measured)."""
    mem = getattr(entry, "memory", None)
    return None if mem is None else mem.for_options(options)


def unknown_stats(entry, options: Mapping[str, Any], trimap, h: int, w: int) -> tuple[float, float]:
    """(unknown pixels, pixels of their bounding box grown by the window's margin) of one trimap."""
    mem = model_of(entry, options)
    margin = 2 * int(options.get(mem.window_option) or 1) if mem.window_option else 2
    return _unknown_stats(trimap, h, w, margin)


def _item_bytes(entry, options, h: int, w: int, stats) -> float:
    mem = model_of(entry, options)
    window = 1.0
    if mem.window_option and mem.window_option in entry.options:
        r, r0 = int(options.get(mem.window_option) or 1), int(entry.options[mem.window_option].default or 1)
        window = ((4 * r + 1) / (4 * r0 + 1)) ** 2
    if mem.net == "unknown":
        net, box = stats or (0.0, 0.0)
    else:
        net, box = network_pixels(mem, options, h, w), 0.0
    return mem.per_pixel * h * w + window * (mem.per_net_pixel * net ** mem.exponent + mem.per_box_pixel * box)


def estimate_bytes(entry, options: Mapping[str, Any], h: int, w: int, n: int = 1, trimap=None,
                   stats: tuple[float, float] | None = None, at_once: bool = True) -> int | None:
    """Peak bytes above the loaded model for ``n`` items of HxW (None: the entry has no memory model). For the
    ``unknown`` rule, ``trimap`` ([B,1,H,W] or HxW, 0/128/255) or ``stats`` (unknown pixels, their bounding box)
    give the solver's size; without them only the per-pixel terms count. ``at_once``: the items are in memory
    together (a network's batch: the sum), else one after the other (the largest)."""
    mem = model_of(entry, options)
    if mem is None:
        return None
    items = []
    for i in range(max(1, n)):
        st = stats
        if st is None and trimap is not None and mem.net == "unknown":
            t = trimap[i] if getattr(trimap, "ndim", 2) == 4 else trimap
            st = unknown_stats(entry, options, t, h, w)
        items.append(_item_bytes(entry, options, h, w, st))
    return int(mem.base_mb * (1 << 20) + (sum(items) if at_once else max(items)))


def decode_bytes(w: int, h: int, samples: int = 4, sample_bytes: int = 1) -> int:
    """Peak bytes of decoding a WxH image of ``samples`` channels of ``sample_bytes`` each and converting it to float
    (``read_rgb`` / ``read_grey``): two copies of the decoded samples, a float32 copy and a float32 plane. Measured
    on 4000x4000 PNGs: 10 / 19 B per pixel (8-bit RGB read as RGB / grey), 18 / 22 (16-bit), 4 / 5 (grey)."""
    return int(w) * int(h) * (2 * samples * sample_bytes + 4 * samples + 4)


# ------------------------------------------------------------------------------------------------ refusals
def _fits(need: int, free: int | None) -> bool:
    return free is None or need * SAFETY <= free


def scaled_size(h: int, w: int, side: int) -> tuple[int, int]:
    """HxW scaled so that the long side is ``side`` (never enlarged)."""
    s = min(1.0, side / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def _full_stats(entry, options, trimap, h: int, w: int):
    """Unknown-pixel solvers: (unknown pixels, box) of item 0's trimap, scaled to an HxW input (the trimap may be a
    downscaled one); None for other rules or without a trimap."""
    mem = model_of(entry, options)
    if trimap is None or mem is None or mem.net != "unknown":
        return None
    t = trimap[0] if getattr(trimap, "ndim", 2) == 4 else trimap
    th, tw = t.shape[-2:]
    u, box = unknown_stats(entry, options, t, th, tw)
    k = h * w / float(th * tw)
    return u * k, box * k


def largest_side(entry, options, h: int, w: int, free: int | None, stats=None, n: int = 1,
                 fixed_bytes: int = 0) -> int | None:
    """The largest long side (a multiple of 16, at least MIN_SIDE) at which ``n`` HxW items, downscaled, fit in
    ``free`` bytes with ``fixed_bytes`` (the decode) and the result brought back to HxW; None if none does.
    ``stats``: (unknown pixels, box) at HxW for unknown-pixel solvers; they scale with the area, the unknown pixels
    doubled (a downscaled band is widened by up to a pixel)."""
    long = max(h, w)

    def need(side: int) -> int:
        sh, sw = scaled_size(h, w, side)
        a = sh * sw / float(h * w)
        st = None if stats is None else (min(sh * sw, 2 * stats[0] * a), min(sh * sw, stats[1] * a))
        return (estimate_bytes(entry, options, sh, sw, n, stats=st) or 0) + UPSCALE_BYTES * h * w * n + fixed_bytes

    lo, hi = MIN_SIDE // 16, (long - 1) // 16
    if hi < lo or not _fits(need(lo * 16), free):
        return None
    while lo < hi:                       # the estimates grow with the size: bisect
        mid = (lo + hi + 1) // 2
        if _fits(need(mid * 16), free):
            lo = mid
        else:
            hi = mid - 1
    return lo * 16


def _lighter(entry, h: int, w: int, free: int, fixed_bytes: int = 0) -> list[str]:
    """Up to two other models for the same inputs whose default estimate (plus ``fixed_bytes``) fits."""
    from .registry import list_models

    out = []
    for e in sorted(list_models(kind=entry.kind), key=lambda e: -e.quality):
        if e.name == entry.name or e.requires != entry.requires or e.memory is None or e.memory.net == "unknown" \
                or not e.implemented:
            continue
        need = estimate_bytes(e, e.option_defaults(), h, w)
        if need is not None and _fits(need + fixed_bytes, free):
            out.append(e.name)
        if len(out) == 2:
            break
    return out


def refusal(entry, options, h: int, w: int, need: int, free: int, *, path=None, stats=None, n: int = 1,
            fixed_bytes: int = 0, where: str = "", max_side: int | None = None) -> TooLarge:
    """The one-line refusal for ``n`` HxW items: the estimate, what is free, and the ways out that fit."""
    what = f"{path}: " if path else ""
    ways = []
    side = largest_side(entry, options, h, w, free, stats, n, fixed_bytes)
    if side and (max_side is None or side < max_side):
        ways.append(f"--max-side {side} (run downscaled, alpha scaled back)")
    mem = model_of(entry, options)
    if mem is not None and mem.tiles:
        ways.append("--option tile=512 (bounded memory)")
    ways += [f"--model {m}" for m in _lighter(entry, h, w, free, fixed_bytes)]
    fix = "; use " + " or ".join(ways) if ways else "; free some memory or downscale the image first"
    return TooLarge(f"{what}{entry.name} on a {w}x{h} image needs about {human(need * SAFETY)} of memory but "
                    f"{human(free)} is available{where}{fix}", path=path)


#: bytes per full-size pixel for bringing a downscaled result back (alpha + foreground, float32, with temporaries)
UPSCALE_BYTES = 32


def check(entry, options: Mapping[str, Any], h: int, w: int, *, n: int = 1, trimap=None, device: Any = "cpu",
          path=None, fixed_bytes: int = 0, max_side: int | None = None, at_once: bool = True) -> int | None:
    """Raise :class:`TooLarge` if ``n`` HxW items would not fit; returns the estimate (None: not estimated).

    ``max_side``: the model runs on the items downscaled to that long side (``trimap``, if given, is then the
    downscaled one) and the result is brought back to HxW. ``fixed_bytes``: more bytes needed anyway (a decode)."""
    run = scaled_size(h, w, max_side) if max_side and max(h, w) > max_side else (h, w)
    need = estimate_bytes(entry, options, run[0], run[1], n, trimap, at_once=at_once)
    if need is None:
        return None
    need += int(fixed_bytes) + (UPSCALE_BYTES * h * w * n if run != (h, w) else 0)
    dev_free = device_free_bytes(device)
    free, where = (dev_free, f" on {device}") if dev_free is not None else (available_bytes(), "")
    if not _fits(need, free):
        raise refusal(entry, options, h, w, need, free, path=path, stats=_full_stats(entry, options, trimap, h, w),
                      n=n if at_once else 1, fixed_bytes=fixed_bytes, where=where, max_side=max_side)
    return need


def check_decode(path, w: int, h: int, samples: int = 4, sample_bytes: int = 1) -> None:
    """Refuse to decode a WxH image that would not fit (read from the header: nothing decoded yet)."""
    need = decode_bytes(w, h, samples, sample_bytes)
    free = available_bytes()
    if not _fits(need, free):
        raise TooLarge(f"{path}: a {w}x{h} image needs about {human(need * SAFETY)} to decode but "
                       f"{human(free)} is available; downscale the file first", path=path)


def check_file(backend, path, size: tuple[int, int] | None = None) -> int | None:
    """Before decoding ``path``: the model's estimate at the header's size (with ``backend.max_side``, the
    downscaled run's) plus the decode; :class:`TooLarge` if it does not fit. None if the size is unknown.
    Unknown-pixel solvers count their per-pixel terms here and the solver's at prediction time."""
    if size is None:
        from .imaging.io import image_size

        size = image_size(path)
    if size is None:
        return None
    w, h = size
    from .imaging.io import check_pixels

    check_pixels(path, w, h)
    return check(backend.entry, backend.options, h, w, device=getattr(backend, "device", "cpu"), path=path,
                 fixed_bytes=decode_bytes(w, h), max_side=getattr(backend, "max_side", None))


def check_bytes(need: int, what: str, path=None) -> None:
    """Refuse a step that needs ``need`` bytes (e.g. ``what="to make the trimap"``) when it does not fit."""
    free = available_bytes()
    if not _fits(need, free):
        at = f"{path}: " if path else ""
        raise TooLarge(f"{at}needs about {human(need * SAFETY)} {what} but {human(free)} is "
                       "available; downscale the input first", path=path)


# ------------------------------------------------------------------------------------------------ the hook
_outer = threading.local()   # ids of the backends whose predict_batch runs in this thread (inner calls skip the guard)


def guarded(fn):
    """A family's ``predict_batch`` behind the guard and ``max_side``, its alpha checked finite
    (``Backend.__init_subclass__`` wraps each one):
    only the outermost call of a backend checks and resizes; its ``super().predict_batch`` and per-tile calls run as
    written."""
    if getattr(fn, "_guarded", False):
        return fn

    @functools.wraps(fn)
    def predict_batch(self, batch, *args, **kwargs):
        active = _outer.__dict__.setdefault("ids", set())
        if id(self) in active:
            return fn(self, batch, *args, **kwargs)
        active.add(id(self))
        try:
            pred = _run(self, fn, batch, args, kwargs)
        finally:
            active.discard(id(self))
        from .backends.base import check_finite

        check_finite(self, pred)
        return pred

    predict_batch._guarded = True
    return predict_batch


def _run(backend, fn, batch, args, kwargs):
    """Check the batch (or its downscaled copy under ``max_side``) against the free memory, then predict."""
    from .errors import UsageError

    h, w = batch.size
    side, entry = backend.max_side, backend.entry
    if side and max(h, w) > side:
        if args or any(v is not None for v in kwargs.values()):
            raise UsageError(f"--max-side: {entry.name}'s extra inputs cannot be downscaled; run without it")
        small = shrink_batch(batch, side)
        check(entry, backend.options, h, w, n=batch.n, trimap=small.trimap, device=backend.device, max_side=side,
              at_once=backend.items_at_once)
        return grow_prediction(fn(backend, small), batch)
    check(entry, backend.options, h, w, n=batch.n, trimap=batch.trimap, device=backend.device,
          at_once=backend.items_at_once)
    return fn(backend, batch, *args, **kwargs)


# ------------------------------------------------------------------------------------------------ --max-side
def shrink_trimap(trimap, sh: int, sw: int):
    """[B,1,H,W] uint8 trimap (0/128/255) -> [B,1,sh,sw]: a small pixel is foreground (background) only if its whole
    footprint is, else unknown, so a thin unknown band never vanishes. Exact, uint8 throughout (no float copy)."""
    import numpy as np
    import torch

    t = trimap.cpu().numpy()
    H, W = t.shape[-2:]
    ri, ci = (np.arange(sh) * H) // sh, (np.arange(sw) * W) // sw
    out = np.full(t.shape[:2] + (sh, sw), 128, np.uint8)
    for i in range(t.shape[0]):
        for value in (0, 255):
            m = (t[i, 0] == value).view(np.uint8)
            m = np.minimum.reduceat(np.minimum.reduceat(m, ri, axis=0), ci, axis=1)
            out[i, 0][m == 1] = value
    return torch.from_numpy(out).to(trimap.device)


def _shrink_images(x, sh: int, sw: int):
    """[B,3,H,W] uint8 or float -> [B,3,sh,sw] of the same dtype, area filter (OpenCV's INTER_AREA on the CPU)."""
    import numpy as np
    import torch

    if x.device.type != "cpu":
        import torch.nn.functional as F

        y = F.interpolate(x.float(), size=(sh, sw), mode="area")
        return y.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else y.to(x.dtype)
    import cv2

    outs = []
    for img in x:
        a = np.ascontiguousarray(img.permute(1, 2, 0).numpy())
        a = a if a.dtype in (np.uint8, np.float32) else a.astype(np.float32)
        outs.append(torch.from_numpy(cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)).permute(2, 0, 1))
    return torch.stack(outs).to(x.dtype)


def shrink_batch(batch, side: int):
    """A Batch whose long side is ``side``: image and plate area-filtered, trimap by :func:`shrink_trimap`."""
    from .backends.base import Batch

    sh, sw = scaled_size(*batch.size, side)
    return Batch(_shrink_images(batch.image, sh, sw),
                 None if batch.trimap is None else shrink_trimap(batch.trimap, sh, sw),
                 None if batch.background is None else _shrink_images(batch.background, sh, sw))


def grow_prediction(pred, batch):
    """A Prediction made on a shrunk ``batch`` -> the full size: alpha and colours bilinear, the trimap's known
    regions exact (0 / 1). Extras stay at the size the model ran at."""
    import torch.nn.functional as F

    size = batch.size

    def up(t):
        if t is None or tuple(t.shape[-2:]) == size:
            return t
        return F.interpolate(t.float(), size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)

    alpha = up(pred.alpha)
    if batch.trimap is not None:
        tri = batch.trimap.to(alpha.device)
        alpha = alpha.masked_fill(tri == 0, 0.0).masked_fill_(tri == 255, 1.0)
    pred.alpha, pred.foreground, pred.background = alpha, up(pred.foreground), up(pred.background)
    return pred


__all__ = ["SAFETY", "RESERVE", "UPSCALE_BYTES", "TooLarge", "available_bytes", "device_free_bytes",
           "estimate_bytes", "network_pixels", "decode_bytes", "check", "check_decode", "check_file", "check_bytes",
           "largest_side", "scaled_size", "shrink_batch", "shrink_trimap", "grow_prediction", "guarded"]
