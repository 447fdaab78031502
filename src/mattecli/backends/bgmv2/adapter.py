"""BGMv2 inference pipeline (inference_images.py / inference_video.py of PeterL1n/BackgroundMattingV2).

Official: PIL RGB -> ``ToTensor`` (uint8 / 255) for image and plate, no resize, no normalisation,
``pha, fgr, _, _, err, ref = model(src, bgr)``; outputs pha, fgr, err (bilinear to full size), ref.

Ours on top (none of it changes results where the official script runs):
- one plate for a whole batch (``Batch.background`` with one item) is broadcast to every frame;
- a plate of another size (same framing: aspect ratio within 2 %) is resized to the image on the device (bilinear,
  antialiased like PIL's resize, which the official video script applies with ``--video-resize``);
- H, W not divisible by 4 (the official model asserts): image and plate are edge-padded at the bottom/right to a
  multiple of 4 and the outputs cropped back exactly;
- ``refine_mode='sampling'`` clamps k to the image (the official script crashes under 80,000 pixels);
- ``align=True``: the plate is warped onto each frame on the host (:mod:`.align`, OpenCV); a failed match warns
  and runs unaligned. ``extras["alignment"]`` reports each frame's outcome.

Outputs: alpha, foreground, ``background`` (the plate as used: resized / aligned), extras ``error`` (err at full
size), ``err_sm`` and ``ref_sm`` (the base network's error map and the refined-patch mask at 1/4 scale).
"""
from __future__ import annotations

from ...errors import InputError
from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import BGMv2Converter, backbone_of

ASPECT_TOLERANCE = 0.02


def plate_like(bgr, n: int, h: int, w: int):
    """[1 or n, 3, h', w'] float plate -> [n, 3, h, w]: resized when its size differs (same aspect ratio), one plate
    broadcast to the n frames."""
    import torch.nn.functional as F

    ph, pw = bgr.shape[-2:]
    if (ph, pw) != (h, w):
        if abs(ph / pw - h / w) > ASPECT_TOLERANCE * (h / w):
            raise InputError(f"background plate is {pw}x{ph} but the image is {w}x{h} (different aspect ratio); "
                             "pass a plate shot with the same framing")
        bgr = F.interpolate(bgr, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
    if bgr.shape[0] == 1 and n > 1:
        bgr = bgr.expand(n, -1, -1, -1)
    elif bgr.shape[0] != n:
        raise InputError(f"{bgr.shape[0]} background plates for {n} images; pass one plate or one per image")
    return bgr


class BGMv2Adapter(TorchBackend):
    converter = BGMv2Converter()
    runtime_parts = (Part("net", "base"),)
    runtime_note = ("the refiner picks patches by data (topk / threshold, nonzero): torch runs it; the base "
                    "network runs on the runtime")

    @property
    def backbone(self) -> str:
        return backbone_of(self.spec)

    def build_net(self, state_dict):
        from .net import MattingRefine

        o = self.options
        return MattingRefine(self.backbone, o["backbone_scale"], o["refine_mode"], o["refine_sample_pixels"],
                             o["refine_threshold"], o["refine_kernel_size"], o["refine_prevent_oversampling"])

    # -- pipeline ---------------------------------------------------------------------------------------------------
    def encode(self, batch):
        import torch
        import torch.nn.functional as F

        if batch.background is None:
            self.check_inputs(None, None)   # MissingInput naming --bg
        h, w = batch.size
        src = batch.float_image(torch.float32)
        bgr = plate_like(batch.float_background(torch.float32), batch.n, h, w)
        alignment = None
        if self.options["align"]:
            bgr, alignment = self.align(batch, bgr)
        ph, pw = (-h) % 4, (-w) % 4
        x, y = src.to(self.dtype), bgr.to(self.dtype)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            y = F.pad(y, (0, pw, 0, ph), mode="replicate")
        return (x, y), (bgr, alignment)

    def align(self, batch, bgr):
        """Warp the plate onto each frame (host, OpenCV) -> (plates [B,3,H,W] on the device, one report each)."""
        import numpy as np
        import torch

        from .align import align_plate

        images = batch.uint8_image().permute(0, 2, 3, 1).cpu().numpy()
        plates = bgr.permute(0, 2, 3, 1).cpu().numpy()
        out, reports = [], []
        for im, pl in zip(images, plates):
            r = align_plate(im, pl)
            out.append(torch.from_numpy(np.ascontiguousarray(r.plate)).permute(2, 0, 1))
            reports.append({"aligned": r.ok, "reason": r.reason, "inliers": r.inliers, "homography": r.homography})
        return torch.stack(out).to(bgr.device, bgr.dtype), reports

    def decode(self, outputs, batch, ctx) -> Prediction:
        import torch.nn.functional as F

        pha, fgr, _pha_sm, _fgr_sm, err_sm, ref_sm = outputs
        bgr, alignment = ctx
        h, w = batch.size
        err = F.interpolate(err_sm, pha.shape[-2:], mode="bilinear", align_corners=False)
        extras = {"error": err[..., :h, :w].float(), "err_sm": err_sm.float(), "ref_sm": ref_sm.float()}
        if alignment is not None:
            extras["alignment"] = alignment
        return Prediction(alpha=pha[..., :h, :w].float(), foreground=fgr[..., :h, :w].float(), background=bgr,
                          extras=extras)
