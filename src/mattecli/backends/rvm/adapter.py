"""RVM backend: the official ``inference.convert_video`` loop, one frame (``predict``) or T frames
(``predict_batch``) at a time, with the recurrent state carried between calls until :meth:`RVMAdapter.reset`.

Official pipeline (inference.py @ 53d74c6): frame -> ToTensor (RGB /255) -> ``model(src[B=1,T], *rec,
downsample_ratio)`` with ``downsample_ratio = min(512 / max(H, W), 1)`` when not given; ``rec`` starts as None
(zeros) and is replaced by the returned states after every chunk. Outputs: alpha and foreground, clamped to [0,1].
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from ...errors import ConverterError, InputError, UsageError
from ..base import MatteResult, TorchBackend, as_float_image


def auto_downsample_ratio(h: int, w: int) -> float:
    """The official rule: the longer side of the network input becomes 512 px (never upscaled)."""
    return min(512 / max(h, w), 1)


class RVMAdapter(TorchBackend):
    #: fold BatchNorm into the convolutions after loading official .pth weights (same maths, faster on CPU)
    fold_bn = True
    #: run the Deep Guided Filter even at downsample_ratio 1 (what the authors' ONNX export does; the official
    #: PyTorch model skips the refiner at ratio 1, which is our default)
    always_refine = False
    #: NHWC memory format on CPU/CUDA (faster convolutions; see MattingNetwork.use_channels_last)
    channels_last = True
    #: frames per network call in predict_batch on CPU. Batching frames does not raise CPU throughput (the convs
    #: already use every core) but multiplies the full-size temporaries, so on CPU frames run one by one (which
    #: also makes batch 4 bit-identical to 4 x batch 1). None = the whole batch as one [1,T] sequence (GPU).
    cpu_frame_chunk = 1

    def __init__(self, entry, weights_set=None, weights: Any = None, device="cpu", precision="fp32", **options):
        self._rec: list | None = None
        self._rec_key: tuple | None = None
        self.variant = None
        super().__init__(entry, weights_set, weights=weights, device=device, precision=precision, **options)

    # -- options ----------------------------------------------------------------------------------------------------
    def parse_options(self, options):
        opts = super().parse_options(options)
        r = opts.get("downsample_ratio")
        if r is not None:
            try:
                r = float(r)
            except (TypeError, ValueError):
                raise UsageError(f"rvm: downsample_ratio must be a number in (0, 1], got {r!r}") from None
            if not 0 < r <= 1:
                raise UsageError(f"rvm: downsample_ratio must be in (0, 1], got {r}")
            opts["downsample_ratio"] = r
        if opts.get("refiner") not in ("deep_guided_filter", "fast_guided_filter"):
            raise UsageError("rvm: refiner must be deep_guided_filter or fast_guided_filter, "
                             f"got {opts.get('refiner')!r}")
        return opts

    # -- building / loading -----------------------------------------------------------------------------------------
    def build_net(self):
        from torch import nn

        return nn.Module()  # the real network is built in load_weights, once the weights tell the variant

    def convert(self, official: dict) -> dict:
        from .convert import to_ours

        return to_ours(official, refiner=self.options["refiner"])

    def read_checkpoint(self, path: str) -> dict:
        from .convert import read_checkpoint

        return read_checkpoint(path)

    def load_weights(self, weights: Any) -> None:
        from ...weights import file_sha256
        from ..checkpoint import check_state_dict, to_tensor_dict
        from .convert import detect_variant, is_folded_layout, load_file
        from .net import MattingNetwork, fold_batchnorm

        if weights is None:
            from ...weights import require

            weights = require(self.entry, self.weights_set)
        path = None
        if isinstance(weights, Mapping):
            official = to_tensor_dict(weights)
        else:
            path = os.fspath(weights)
            if not os.path.isfile(path):
                raise InputError(f"{path}: weights file not found; pass an existing file to --weights", path=path)
            official, _meta = load_file(path)
        try:
            ours = self.convert(official)
        except ConverterError as e:
            if path and path not in str(e):
                raise ConverterError(f"{path}: {e}", path=path) from None
            raise
        self.variant = detect_variant(ours)
        folded = is_folded_layout(ours)
        net = MattingNetwork(self.variant, refiner=self.options["refiner"],
                             segmentation="project_seg.conv.weight" in ours)
        if folded:
            fold_batchnorm(net, values=False)
        check_state_dict(net, ours, what=f"{self.entry.name} weights")
        net.load_state_dict(ours, strict=True)
        if self.fold_bn and not folded:
            fold_batchnorm(net.eval())
        if self.channels_last and self.device.type in ("cpu", "cuda"):
            net.use_channels_last()
        self.net = net
        self.weights_path = path
        self.weights_sha256 = file_sha256(path) if path else None
        self.after_load()

    # -- state ------------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._rec = None
        self._rec_key = None

    def ratio_for(self, h: int, w: int) -> float:
        r = self.options.get("downsample_ratio")
        return auto_downsample_ratio(h, w) if r is None else r

    def _run(self, src, ratio: float):
        """src [1,T,3,H,W] on device in the net dtype -> (fgr, pha) [T,C,H,W]; carries the state."""
        import torch

        key = (tuple(src.shape[-2:]), ratio, src.dtype, src.device)
        if self._rec_key != key:  # a new size/ratio/dtype starts a new sequence
            self._rec = [None] * 4
            self._rec_key = key
        with torch.inference_mode():
            fgr, pha, *rec = self.net(src, *self._rec, downsample_ratio=ratio,
                                      refine=True if self.always_refine else None)
        self._rec = rec
        return fgr[0], pha[0]

    # -- inference --------------------------------------------------------------------------------------------------
    def predict(self, image: np.ndarray, trimap=None, background=None) -> MatteResult:
        import torch

        img = as_float_image(image)
        h, w = img.shape[:2]
        src = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        src = src.to(self.device, self.dtype)[None, None]
        fgr, pha = self._run(src, self.ratio_for(h, w))
        alpha = pha[0, 0].float().cpu().numpy()
        fg = fgr[0].float().permute(1, 2, 0).cpu().numpy()
        return MatteResult(alpha=np.ascontiguousarray(alpha), foreground=np.ascontiguousarray(fg),
                           extras={"downsample_ratio": self.ratio_for(h, w)})

    def predict_batch(self, images, trimaps=None, backgrounds=None) -> dict:
        """images [B,3,H,W] in [0,1] = B consecutive frames of ONE video (state carried across calls)."""
        import torch

        out_dtype = images.dtype if images.is_floating_point() else torch.float32
        if not images.is_floating_point():
            images = images.float() / 255.0
        h, w = images.shape[-2:]
        src = images.to(self.device, self.dtype).unsqueeze(0)
        ratio = self.ratio_for(h, w)
        chunk = self.cpu_frame_chunk if self.device.type == "cpu" else None
        if chunk and src.shape[1] > chunk:
            parts = [self._run(src[:, i:i + chunk], ratio) for i in range(0, src.shape[1], chunk)]
            fgr = torch.cat([p[0] for p in parts])
            pha = torch.cat([p[1] for p in parts])
        else:
            fgr, pha = self._run(src, ratio)
        return {"alpha": pha.to(images.device, out_dtype), "foreground": fgr.to(images.device, out_dtype)}
