"""GFM inference pipeline as ``core/test.py`` (``test_samples`` + ``inference_img_gfm``) runs it.

0. If the short side exceeds ``shorter_path_limitation`` (1080), the image is first resized with cv2 INTER_LINEAR so
   the short side is 1080 and the long side ``int(1080 * long / short)``; the official script then writes the alpha
   at that reduced size, we resize it back to the input size (our addition, ``skimage`` resize).
1. A pass at ratio r: ``new = min(max_size, int(side*r) - int(side*r) % 32)`` per side, the image resized with
   scikit-image's ``resize`` (:func:`pipeline.sk_resize`) and multiplied by 255: the network sees RGB in 0..255, not
   normalised. Sides under 32 px after flooring are raised to 32 (the official code would crash on them).
2. Glance -> argmax over channels of the sigmoid maps (first max on ties) -> uint8 trimap (TT: 0/128/255; FT/BT:
   0/255), resized to the image size (uint8 -> [0,1] float, bilinear) times 255; focus and fused maps resized as
   floats.
3. ``test_choice='HYBRID'`` (default): glance from a 1/3 pass, focus from a 1/2 pass, fused by
   :func:`pipeline.fuse`; ``'RESIZE'``: one 1/2 pass, the network's own fusion resized. RIM: one ``h/3`` pass, the
   TT/FT/BT/RIM fusions resized; ``pred_choice`` picks one (4 = RIM, default).
``alpha`` is the chosen map clipped to [0,1] (the official script writes ``(x*255).astype(uint8)``); ``extras``
carries the maps at the prepared size: glance (0..255), focus and fusion (RIM: ``tt_fusion`` ... ``rim_fusion``).

Devices: the resizes (cv2, scikit-image) run on the host per image, as the official code computes them in float64;
the network passes and the glance argmax run on the batch's device, a batch of equal-size images at once.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from . import pipeline
from .convert import GFMConverter, variant_of


def _host(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class GFMAdapter(TorchBackend):
    converter = GFMConverter()
    runtime_parts = (Part("net"),)

    @property
    def rosta(self) -> str:
        return variant_of(self.spec)[1]

    @property
    def pred_choice(self) -> int:
        p = self.options["pred_choice"]
        return (4 if self.rosta == "RIM" else 3) if p is None else int(p)

    def check_options(self) -> None:
        """pred_choice 4 exists only for the RIM weights: checked at construction, before the weights are read."""
        if self.pred_choice == 4 and self.rosta != "RIM":
            raise UsageError(f"model {self.entry.name}.{self.spec.tag or 'r34-tt'}: --option pred_choice=4 (RIM) "
                             "needs the d121-rim weights; valid here: 1 (glance), 2 (focus), 3 (fusion)")

    def load_state_dict(self, weights):
        self.check_options()
        return super().load_state_dict(weights)

    def build_net(self, state_dict):
        import torch

        from .net import GFM

        with torch.device("meta"):  # no random init: every tensor is overwritten by the strict load that follows
            net = GFM(*variant_of(self.spec))
        return net.to_empty(device="cpu")

    # -- pipeline --------------------------------------------------------------------------------------------
    def encode(self, batch):
        """-> (one [B,3,h,w] network input per pass, ctx). The resizes run on the host, per image."""
        import torch

        limit = self.options["shorter_path_limitation"]
        images = [pipeline.prepare(t.permute(1, 2, 0).cpu().numpy(), limit) for t in batch.image]
        max_size = int(self.options["max_size"])
        inputs = []
        for ratio, div in pipeline.passes(self.rosta, self.options["test_choice"]):
            x = np.stack([pipeline.net_input(img, max_size, ratio=ratio, div=div) for img in images])
            inputs.append(torch.from_numpy(x).to(batch.device, self.dtype))
        return inputs, {"size": batch.size, "prepared": images[0].shape[:2]}

    def forward(self, inputs):
        return [self.net(x) for x in inputs]

    def _glance_u8(self, glance):
        """[B,C,h,w] sigmoid maps -> [B,h,w] uint8 levels (gen_trimap_from_segmap_e2e / gen_bw_from_segmap_e2e)."""
        import torch

        from ..layers.reductions import first_argmax

        lut = torch.tensor(pipeline.GLANCE_LEVELS[glance.shape[1]], dtype=torch.uint8, device=glance.device)
        return lut[first_argmax(glance, dim=1)].cpu().numpy()

    def maps(self, outs, i: int, hw) -> dict:
        """Item ``i``'s maps resized to ``hw`` (float64, the official arrays)."""
        if self.rosta == "RIM":
            o = outs[0]
            return {name: pipeline.sk_resize(_host(o[f"fusion_{name[:-7]}"][i, 0]), hw) for name in pipeline.RIM_MAPS}
        glance_pass, focus_pass = outs[0], outs[-1]
        glance = pipeline.sk_resize(self._glance_u8(glance_pass["glance"][i:i + 1])[0], hw) * 255.0
        focus = pipeline.sk_resize(_host(focus_pass["focus"][i, 0]), hw)
        if len(outs) == 1:   # RESIZE: the network's own fusion
            fusion = pipeline.sk_resize(_host(glance_pass["fusion"][i, 0]), hw)
        else:
            fusion = pipeline.fuse(self.rosta, glance, focus)
        return {"glance": glance, "focus": focus, "fusion": fusion}

    def decode(self, outs, batch, ctx):
        import torch

        h, w = ctx["size"]
        alphas, extras = [], {}
        for i in range(batch.n):
            maps = self.maps(outs, i, ctx["prepared"])
            alpha = np.asarray(pipeline.select(maps, self.rosta, self.pred_choice), np.float64)
            if alpha.shape != (h, w):
                alpha = pipeline.sk_resize(alpha, (h, w))
            alphas.append(np.clip(alpha, 0.0, 1.0).astype(np.float32))
            for k, v in maps.items():
                extras.setdefault(k, []).append(np.asarray(v, np.float32))
        dev = batch.device

        def stack(arrays):
            return torch.from_numpy(np.stack(arrays)[:, None]).to(dev)

        return Prediction(alpha=stack(alphas), extras={k: stack(v) for k, v in extras.items()})
