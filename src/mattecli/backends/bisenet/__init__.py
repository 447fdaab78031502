"""BiSeNetV2 semantic segmenters (registry data only). Used by `mattecli trimap --segmenter`."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource
from .classes import CITYSCAPES, COCOSTUFF

_ORIGIN = "github.com/CoinCheung/BiSeNet @ 6b4b67a8e3eb"
_RELEASE = "https://github.com/CoinCheung/BiSeNet/releases/download/0.0.0/"
_PAPER = ("Yu et al., BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic Segmentation, "
          "IJCV 2021")
_OPTIONS = {
    "classes": Option(("person",), "list", help="class names (or indices) that make the foreground"),
    "normalization": Option("demo", "choice", choices=("demo", "dataset"),
                            help="demo: the authors' demo mean/std (both weight sets); dataset: each dataset's own"),
}

ENTRIES = [
    ModelEntry(
        name="bisenetv2.cocostuff",
        family="bisenet",
        kind="segmenter",
        summary="BiSeNetV2 semantic segmentation, COCO-Stuff 171 classes (person = class 0); coarse masks for trimaps",
        paper=_PAPER,
        outputs=("alpha", "labels"),
        adapter="mattecli.backends.bisenet.adapter:BiSeNetV2Adapter",
        weights=(Weights(
            tag="cocostuff", filename="model_final_v2_coco.pth",
            sources=(WeightSource("url", _RELEASE + "model_final_v2_coco.pth",
                                  note="GitHub release 0.0.0 of CoinCheung/BiSeNet (README table)"),),
            license="MIT (released with the code)", trained_on="COCO-Stuff 164k (COCO 2017 118k train; 171 classes)",
            metrics={"COCO-Stuff val2017 mIoU (ss)": 30.49},
            notes="plain state_dict saved in training mode (auxiliary heads aux2..aux5_4 are validated and dropped)",
        ),),
        precisions=("fp32", "fp16", "bf16"),
        code_license="MIT",
        origin=_ORIGIN,
        aliases=("bisenetv2", "bisenet", "bisenetv2.coco"),
        options=_OPTIONS,
        classes=COCOSTUFF,
        quality=20,
        memory=MemoryModel(base_mb=59, per_pixel=1450),   # 171 class maps at full size
        # benchmarks/runtimes.py (2-core AVX-512 CPU, predict, cocostuff, vs eager torch; the post-processing at full
        # size stays on torch): openvino 1.28x / 1.21x at 512x512 / 1080p, onnxruntime 1.17x / 1.19x
        runtimes={"cpu": ("openvino", "onnxruntime")},
    ),
    ModelEntry(
        name="bisenetv2.cityscapes",
        family="bisenet",
        kind="segmenter",
        summary="BiSeNetV2 semantic segmentation, Cityscapes 19 classes (person = 11, rider = 12)",
        paper=_PAPER,
        outputs=("alpha", "labels"),
        adapter="mattecli.backends.bisenet.adapter:BiSeNetV2Adapter",
        weights=(Weights(
            tag="cityscapes", filename="model_final_v2_city.pth",
            sources=(WeightSource("url", _RELEASE + "model_final_v2_city.pth",
                                  note="GitHub release 0.0.0 of CoinCheung/BiSeNet (README table)"),),
            license="MIT (released with the code)", trained_on="Cityscapes fine train (19 classes)",
            metrics={"Cityscapes val mIoU (ss)": 74.95},
            notes="plain state_dict saved in training mode (auxiliary heads aux2..aux5_4 are validated and dropped)",
        ),),
        precisions=("fp32", "fp16", "bf16"),
        code_license="MIT",
        origin=_ORIGIN,
        aliases=("bisenetv2.city",),
        options=_OPTIONS,
        classes=CITYSCAPES,
        quality=10,
        memory=MemoryModel(base_mb=48, per_pixel=265),
        # benchmarks/runtimes.py (2-core AVX-512 CPU, predict, cocostuff, vs eager torch; the post-processing at full
        # size stays on torch): openvino 1.28x / 1.21x at 512x512 / 1080p, onnxruntime 1.17x / 1.19x
        runtimes={"cpu": ("openvino", "onnxruntime")},
    ),
]
