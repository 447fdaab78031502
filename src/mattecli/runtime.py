"""Device and precision selection (imports torch lazily)."""
from __future__ import annotations

from .errors import UsageError

_PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def pick_device(device: str | None = "auto"):
    import torch

    d = (device or "auto").lower()
    if d == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    try:
        return torch.device(d)
    except RuntimeError as e:
        raise UsageError(f"unknown device {device!r}: {e}; use auto, cpu or cuda[:N]") from None


def pick_dtype(precision: str | None, device, allowed: tuple[str, ...] = ("fp32",)):
    """Resolve --precision to a torch dtype. auto = fp16 on CUDA where the entry allows it, else fp32."""
    import torch

    p = (precision or "auto").lower()
    if p == "auto":
        if device.type == "cuda" and "fp16" in allowed:
            return torch.float16
        return torch.float32
    if p not in _PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
    if p != "fp32" and p not in allowed:
        raise UsageError(f"precision {p} is not supported by this model (allowed: {', '.join(allowed)})")
    if p == "fp16" and device.type == "cpu":
        raise UsageError("fp16 runs on CUDA only; use --precision bf16 or fp32 on CPU")
    return getattr(torch, _PRECISIONS[p])


def set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(int(n))
