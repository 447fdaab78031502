"""RVM backend: the official ``inference.convert_video`` loop. ``predict_batch`` takes the B images of a Batch as B
consecutive frames of ONE video; the recurrent state is carried between calls (``predict`` and ``predict_batch``
alike) until :meth:`RVMAdapter.reset`, or until the frame size, ratio or dtype changes (a new sequence).

Official pipeline (inference.py @ 53d74c6): frame -> ToTensor (RGB uint8 / 255, float32) -> ``model(src[B=1,T], *rec,
downsample_ratio)``; ``rec`` starts as None (zeros) and is replaced by the returned states after every chunk.
Outputs: alpha and foreground, clamped to [0,1]. ``downsample_ratio`` defaults to :func:`auto_downsample_ratio`, the
authors' guidance table (see the package docstring; the official ``convert_video`` default differs).

Speed-ups that keep the maths: BatchNorm folded into the convolutions at load time, NHWC (channels-last) weights
and activations on CPU/CUDA, and on CPU frames run one network call each (batching frames does not raise CPU
throughput but multiplies the full-size temporaries; it also makes batch 4 bit-identical to 4 x batch 1).
"""
from __future__ import annotations

from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import RVMConverter, detect_variant, has_segmentation, is_folded_layout
from .ratio import auto_downsample_ratio


class RVMAdapter(TorchBackend):
    converter = RVMConverter()
    #: fold BatchNorm into the convolutions after loading official .pth weights (same maths, faster on CPU)
    fold_bn = True
    #: run the guided-filter refiner even at downsample_ratio 1 (what the authors' ONNX export does; the official
    #: PyTorch model skips the refiner at ratio 1, which is our default)
    always_refine = False
    #: NHWC memory format on CPU/CUDA (faster convolutions; see MattingNetwork.use_channels_last)
    channels_last = True
    #: frames per network call in predict_batch on CPU (see the module docstring). None = the whole batch as one
    #: [1,T] sequence (the GPU path).
    cpu_frame_chunk = 1
    #: --runtime onnxruntime/openvino: the network at its own resolution (net.core, one frame per call, the states
    #: as inputs and outputs); the full-size guided-filter step is a fused kernel on the CPU (runtimes.kernels)
    runtime_parts = (Part("net", "core", fixed_batch=True),)

    def __init__(self, entry, weights_set=None, **kwargs):
        self._rec: list | None = None
        self._rec_key: tuple | None = None
        self.variant: str | None = None
        self._weights_source = None
        super().__init__(entry, weights_set, **kwargs)

    # -- weights and network ----------------------------------------------------------------------------------------
    def load_state_dict(self, weights):
        """Our state dict; converted files are stored with the default (deep) refiner, whose parameters the fast
        guided filter does not take."""
        self._weights_source = weights
        ours = super().load_state_dict(weights)
        if self.options["refiner"] == "fast_guided_filter":
            ours = {k: v for k, v in ours.items() if not k.startswith("refiner.")}
        return ours

    def build_net(self, state_dict):
        """The architecture follows the weights: variant, folded BatchNorm (ONNX), segmentation head."""
        from .net import MattingNetwork, fold_batchnorm

        self.variant = detect_variant(state_dict)
        net = MattingNetwork(self.variant, refiner=self.options["refiner"],
                             segmentation=has_segmentation(state_dict))
        if is_folded_layout(state_dict):
            fold_batchnorm(net, values=False)
        return net

    def unfolded_state_dict(self) -> dict:
        """Our state dict as loaded, before the load-time BatchNorm folding (read again from where it came from:
        the network keeps only the folded weights)."""
        return self.load_state_dict(self._weights_source)

    def after_load(self) -> None:
        from .net import fold_batchnorm, is_folded

        if self.fold_bn and not is_folded(self.net):
            fold_batchnorm(self.net)
        if self.channels_last and self.device.type in ("cpu", "cuda"):
            self.net.use_channels_last()

    # -- state ------------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._rec = None
        self._rec_key = None

    def ratio_for(self, h: int, w: int) -> float:
        r = self.options.get("downsample_ratio")
        return auto_downsample_ratio(h, w) if r is None else float(r)

    # -- pipeline ---------------------------------------------------------------------------------------------------
    def encode(self, batch):
        """ToTensor (uint8 / 255 in float32, then the model dtype) -> one sequence [1, T=B, 3, H, W]. With an
        engine on the CPU, uint8 frames stay uint8: the kernels divide by 255 as they read them."""
        import torch

        ratio = self.ratio_for(*batch.size)
        if batch.image.dtype == torch.uint8 and self._engine_usable() and self.device.type == "cpu":
            return (batch.image.unsqueeze(0), ratio), ratio
        src = batch.float_image(torch.float32).to(self.dtype).unsqueeze(0)
        return (src, ratio), ratio

    # -- runtimes ---------------------------------------------------------------------------------------------------
    def _engine_usable(self) -> bool:
        """An engine runs net.core (see runtime_parts) and nothing asks for torch (forward hooks, another dtype)."""
        import torch

        from ..runtimes import engine_active
        from ..runtimes.hook import hooks_present

        return (engine_active(self) and self.dtype in (torch.float32, torch.float16)
                and next(self.net.parameters()).dtype == self.dtype
                and not hooks_present(self.net, self._engine_calls[0].modules))

    def export_mode(self):
        """Export in NCHW (the graph's layout is the engine's business; our NHWC concatenations do not trace)."""
        from contextlib import contextmanager

        @contextmanager
        def nchw():
            was = self.net.channels_last
            self.net.use_channels_last(False)
            try:
                yield
            finally:
                self.net.use_channels_last(was)

        return nchw()

    def _engine_frames(self, src, ratio: float):
        """src [1,T,3,H,W] (uint8 or float32 on the CPU; the model dtype elsewhere) -> (fgr, pha) [T,C,H,W], frame
        by frame: net.core on the engine; on the CPU the resize to the network's size and the full-size refiner
        step are fused kernels (runtimes.kernels), elsewhere the torch operations of MattingNetwork.forward."""
        import torch
        import torch.nn.functional as F

        from ..runtimes import kernels
        from .net import DeepGuidedFilterRefiner

        T, _, H, W = src.shape[1:]
        cpu = src.device.type == "cpu"
        refine = bool(self.always_refine or ratio != 1)
        fgr = torch.empty((T, H, W, 3), dtype=torch.float32, device=src.device)
        pha = torch.empty((T, 1, H, W), dtype=torch.float32, device=src.device)
        for t in range(T):
            x = src[0, t]
            if not cpu or ratio == 1:
                x = (x.float() / 255.0 if x.dtype == torch.uint8 else x).to(self.dtype)
            if ratio == 1:
                x_sm = x[None].contiguous()
            elif cpu:
                x_sm = kernels.downsample(x, ratio)
            else:
                x_sm = F.interpolate(x[None], scale_factor=ratio, mode="bilinear", align_corners=False,
                                     recompute_scale_factor=False)
            if self._rec[0] is None:
                self._rec = [torch.zeros(s, dtype=self.dtype, device=src.device)
                             for s in self.net.state_shapes(1, *x_sm.shape[-2:])]
            out, *self._rec = self.net.core(x_sm, *self._rec, refine=refine)
            if refine and cpu:
                kernels.guided_apply(out[0], x, fgr[t], pha[t])
                continue
            if refine:
                f, p = DeepGuidedFilterRefiner.apply(x[None], out)
            else:
                f, p = out[:, :3], out[:, 3:]
            fgr[t] = (f[0] + x).clamp_(0.0, 1.0).permute(1, 2, 0)
            pha[t] = p[0].clamp(0.0, 1.0)
        return fgr.permute(0, 3, 1, 2), pha

    def _step(self, src, ratio: float):
        """src [1,T,3,H,W] -> (fgr, pha) [T,C,H,W]; the recurrent state is read and replaced."""
        fgr, pha, *rec = self.net(src, *self._rec, downsample_ratio=ratio,
                                  refine=True if self.always_refine else None)
        self._rec = rec
        return fgr[0], pha[0]

    def forward(self, inputs):
        import torch

        src, ratio = inputs
        key = (tuple(src.shape[-2:]), ratio, self.dtype, src.device)
        if self._rec_key != key or self._rec is None:   # a new size/ratio/dtype starts a new sequence
            self._rec = [None] * 4
            self._rec_key = key
        if self._engine_usable():
            return self._engine_frames(src, ratio)
        chunk = self.cpu_frame_chunk if src.device.type == "cpu" else None
        if chunk and src.shape[1] > chunk:
            parts = [self._step(src[:, i:i + chunk], ratio) for i in range(0, src.shape[1], chunk)]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return self._step(src, ratio)

    def decode(self, outputs, batch, ratio) -> Prediction:
        fgr, pha = outputs
        return Prediction(alpha=pha.float(), foreground=fgr.float(), extras={"downsample_ratio": ratio})
