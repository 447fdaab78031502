"""Background Matting V2 (registry data only; no torch import here)."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_ORIGIN = "github.com/PeterL1n/BackgroundMattingV2 @ a8e82df9f594578edf287dbb2b289ebcc50fbf00"
_RELEASE = "https://github.com/PeterL1n/BackgroundMattingV2/releases/tag/v1.0.0"
_GDRIVE = "https://drive.google.com/drive/folders/1cbetlrKREitIgjnIikG1HdM4x72FtgBh (PyTorch/ subfolder)"
_LICENSE = "MIT (README: 'updated our project to MIT License, which permits commercial use', Dec 2020)"
_TRAINED = ("the authors' VideoMatte240K and PhotoMatte13K plus public matting sets, composited on "
            "backgrounds (paper, Sec. 4); MattingBase first, then MattingRefine end to end")


def _w(tag: str) -> Weights:
    fname = f"pytorch_{tag}.pth"
    return Weights(
        tag=tag,
        filename=fname,
        sources=(
            WeightSource("gdrive", "1cbetlrKREitIgjnIikG1HdM4x72FtgBh", member=f"PyTorch/{fname}",
                         note="Google Drive folder from the README"),
            WeightSource("manual", _RELEASE, note=f"GitHub release v1.0.0 asset {fname} (README 'Download')"),
            WeightSource("manual", _GDRIVE, note=f"Google Drive folder from the README, file PyTorch/{fname}"),
        ),
        format="torch",
        license=_LICENSE,
        trained_on=_TRAINED,
        notes="plain state_dict of MattingRefine (no prefix); TorchScript/ONNX exports of the release are not read",
    )


ENTRIES = [
    ModelEntry(
        name="bgmv2",
        family="bgmv2",
        summary="Background Matting V2: image + clean background plate -> alpha and foreground, refined at full "
                "resolution on the patches with the largest predicted error (real time at HD/4K on a GPU)",
        paper="Lin et al., Real-Time High-Resolution Background Matting, CVPR 2021 (arXiv:2012.07810)",
        requires=frozenset({"background"}),
        outputs=("alpha", "foreground", "error"),
        adapter="mattecli.backends.bgmv2.adapter:BGMv2Adapter",
        weights=(_w("resnet50"), _w("resnet101"), _w("mobilenetv2")),
        precisions=("fp32", "fp16", "bf16"),
        code_license="MIT",
        origin=_ORIGIN,
        options={
            # official MattingRefine / inference script options (defaults of inference_images.py)
            "backbone_scale": Option(0.25, "float", min=0, max=0.5, min_open=True, help="scale of the base network"),
            "refine_mode": Option("sampling", "choice", choices=("full", "sampling", "thresholding")),
            "refine_sample_pixels": Option(80_000, "int", min=0, help="pixels refined in sampling mode"),
            "refine_threshold": Option(0.7, "float", min=0, max=1, help="error threshold in thresholding mode"),
            "refine_kernel_size": Option(3, "int", choices=(1, 3), help="the released weights use 3"),
            "refine_prevent_oversampling": Option(True, "bool"),
            # ours: warp the plate onto each frame (hand-held shots); failures warn and fall back to no alignment
            "align": Option(False, "bool", help="align the plate to a hand-held shot (features + homography)"),
        },
        quality=80,
        memory=MemoryModel(base_mb=278, per_pixel=181, per_net_pixel=776, net="scale", net_option="backbone_scale",
                           variants=tuple((k, v, MemoryModel(base_mb=278, per_pixel=456, per_net_pixel=776, net="scale",
                                                             net_option="backbone_scale"))
                                          for k, v in (("refine_mode", "full"), ("refine_mode", "thresholding")))),
        # benchmarks/runtimes.py --models bgmv2 bgmv2.mobilenetv2 (2-core AVX-512 CPU, predict, vs eager torch; the
        # base network on the engine, the refiner on torch): resnet50 openvino 1.54x / 1.19x at 512x512 / 1080p,
        # onnxruntime 1.27x / 1.14x; mobilenetv2 openvino 1.12x / 1.30x, onnxruntime 1.07x / 1.14x
        runtimes={"cpu": ("openvino", "onnxruntime")},
    ),
]
