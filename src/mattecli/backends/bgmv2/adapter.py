"""BGMv2 inference pipeline (inference_images.py / inference_video.py of PeterL1n/BackgroundMattingV2).

Official: PIL RGB -> ``ToTensor`` (uint8/255) for image and plate, no resize, no normalisation,
``pha, fgr, _, _, err, ref = model(src, bgr)``; outputs pha, fgr, err (bilinear to full size), ref.

Ours on top (none of it changes results where the official script runs):
- H, W not divisible by 4 (the official model asserts): image and plate are edge-padded at the bottom/right to a
  multiple of 4 and the outputs cropped back exactly;
- a plate of a different size is resized to the image (the official video script resizes both with --video-resize);
- ``refine_mode='sampling'`` clamps k to the image (the official script crashes under 80,000 pixels);
- ``align=True``: the plate is warped onto each frame (:mod:`.align`); a failed match warns and runs unaligned.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError, UsageError
from ..base import MatteResult, TorchBackend, as_float_image
from . import convert


class BGMv2Adapter(TorchBackend):
    def parse_options(self, options):
        opts = super().parse_options(options)
        from .net import REFINE_MODES

        if opts["refine_mode"] not in REFINE_MODES:
            raise UsageError(f"bgmv2: refine_mode must be one of {', '.join(REFINE_MODES)}, "
                             f"not {opts['refine_mode']!r}")
        if opts["refine_kernel_size"] not in (1, 3):
            raise UsageError("bgmv2: refine_kernel_size must be 1 or 3 (the released weights use 3)")
        try:
            scale = float(opts["backbone_scale"])
        except (TypeError, ValueError):
            raise UsageError(f"bgmv2: backbone_scale must be a number, not {opts['backbone_scale']!r}") from None
        if not 0 < scale <= 0.5:
            raise UsageError(f"bgmv2: backbone_scale must be in (0, 0.5], not {scale}")
        if int(opts["refine_sample_pixels"]) < 0:
            raise UsageError("bgmv2: refine_sample_pixels must be >= 0")
        return opts

    @property
    def backbone(self) -> str:
        return self.weights_set.tag if self.weights_set is not None else "resnet50"

    def build_net(self):
        from .net import MattingRefine

        o = self.options
        return MattingRefine(self.backbone, float(o["backbone_scale"]), o["refine_mode"],
                             int(o["refine_sample_pixels"]), float(o["refine_threshold"]),
                             int(o["refine_kernel_size"]), bool(o["refine_prevent_oversampling"]))

    def read_checkpoint(self, path):
        return convert.read_checkpoint(path)

    def convert(self, official):
        return convert.to_ours(official, self.net.state_dict().keys())

    # -- core ---------------------------------------------------------------------------------------------------
    def forward_padded(self, src, bgr):
        """src, bgr: [B,3,H,W] float tensors on self.device. Pads to a multiple of 4 (edge), returns dict of
        float32 tensors cropped to (H, W): alpha, foreground, error (full res), err_sm, ref_sm."""
        import torch
        import torch.nn.functional as F

        H, W = src.shape[-2:]
        ph, pw = (-H) % 4, (-W) % 4
        src = src.to(self.dtype)
        bgr = bgr.to(self.dtype)
        if ph or pw:
            src = F.pad(src, (0, pw, 0, ph), mode="replicate")
            bgr = F.pad(bgr, (0, pw, 0, ph), mode="replicate")
        with torch.inference_mode():
            pha, fgr, _pha_sm, _fgr_sm, err_sm, ref_sm = self.net(src, bgr)
            err = F.interpolate(err_sm, src.shape[2:], mode="bilinear", align_corners=False)
        return {
            "alpha": pha[..., :H, :W].float(),
            "foreground": fgr[..., :H, :W].float(),
            "error": err[..., :H, :W].float(),
            "err_sm": err_sm.float(),
            "ref_sm": ref_sm.float(),
        }

    def _plate_like(self, plate: np.ndarray, h: int, w: int) -> np.ndarray:
        if plate.shape[:2] == (h, w):
            return plate
        ph, pw = plate.shape[:2]
        if abs(ph / pw - h / w) > 0.02 * (h / w):
            raise InputError(f"background plate is {pw}x{ph} but the image is {w}x{h} (different aspect ratio); "
                             "pass a plate shot with the same framing")
        import cv2

        interp = cv2.INTER_AREA if ph * pw > h * w else cv2.INTER_LINEAR
        return cv2.resize(plate, (w, h), interpolation=interp)

    def prepare_plate(self, image: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, dict]:
        """Float [0,1] plate matched to the image size, aligned if the ``align`` option is on."""
        h, w = image.shape[:2]
        bg = self._plate_like(as_float_image(background, "background plate"), h, w)
        info: dict = {}
        if self.options.get("align"):
            from .align import align_plate

            r = align_plate(image, bg)
            bg = r.plate
            info = {"aligned": r.ok, "reason": r.reason, "inliers": r.inliers, "homography": r.homography}
        return bg, info

    def predict(self, image: np.ndarray, trimap: np.ndarray | None = None, background: np.ndarray | None = None,
                **extra: Any) -> MatteResult:
        import torch

        self.check_inputs(trimap, background)
        img = as_float_image(image)
        bg, info = self.prepare_plate(img, background)
        src = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(self.device)
        bgr = torch.from_numpy(np.ascontiguousarray(bg.transpose(2, 0, 1)))[None].to(self.device)
        out = self.forward_padded(src, bgr)
        extras = {
            "error": out["error"][0, 0].cpu().numpy(),
            "err_sm": out["err_sm"][0, 0].cpu().numpy(),
            "ref_sm": out["ref_sm"][0, 0].cpu().numpy(),
        }
        if info:
            extras["alignment"] = info
        return MatteResult(
            alpha=out["alpha"][0, 0].cpu().numpy(),
            foreground=out["foreground"][0].permute(1, 2, 0).cpu().numpy(),
            background=bg,
            extras=extras,
        )

    def predict_batch(self, images, trimaps=None, backgrounds=None, **extra) -> dict:
        """Batched on the device. ``backgrounds``: [B,3,H,W] or one plate [1,3,H,W] (or [3,H,W]) for every frame."""
        import torch
        import torch.nn.functional as F

        if backgrounds is None:
            self.check_inputs(None, None)
        dev = images.device
        src = images.to(self.device, torch.float32)
        bgr = torch.as_tensor(backgrounds)
        if bgr.dim() == 3:
            bgr = bgr[None]
        bgr = bgr.to(self.device, torch.float32)
        if bgr.shape[-2:] != src.shape[-2:]:
            bgr = F.interpolate(bgr, size=src.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        if bgr.shape[0] == 1 and src.shape[0] > 1:
            bgr = bgr.expand(src.shape[0], -1, -1, -1)
        if self.options.get("align"):
            from .align import align_plate

            aligned = []
            for i in range(src.shape[0]):
                im = src[i].permute(1, 2, 0).cpu().numpy()
                pl = bgr[i].permute(1, 2, 0).cpu().numpy()
                aligned.append(torch.from_numpy(np.ascontiguousarray(align_plate(im, pl).plate)).permute(2, 0, 1))
            bgr = torch.stack(aligned).to(self.device)
        out = self.forward_padded(src, bgr)
        return {"alpha": out["alpha"].to(dev), "foreground": out["foreground"].to(dev), "error": out["error"].to(dev)}
