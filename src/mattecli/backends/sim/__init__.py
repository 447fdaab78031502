"""SIM (Semantic Image Matting) registry data (no torch import here).

Two files: the matting network (tag ``simd``, default, or ``adobe``) and the semantic-trimap classifier, registered
as the weight set ``sim.classifier`` so that ``mattecli models import sim.classifier FILE`` caches it; ``load_model``
takes it as ``classifier_weights=`` (the official config key is ``[classifier] resume_checkpoint``).
"""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_LICENSE = ("not stated by the authors (no licence file in nowsyn/SIM); trained on data that includes the Adobe Deep "
            "Image Matting dataset, whose licence allows noncommercial use only")
_REPO = "github.com/nowsyn/SIM"

ENTRIES = [
    ModelEntry(
        name="sim",
        family="sim",
        summary="SIM, Semantic Image Matting: ResNet-50 + ASPP matting network guided by a 20-class semantic "
                "trimap from a patch classifier (trimap)",
        paper="Sun, Tang & Tai, Semantic Image Matting, CVPR 2021",
        requires=frozenset({"trimap"}),
        outputs=("alpha",),
        adapter="mattecli.backends.sim.adapter:SIMAdapter",
        weights=(
            Weights(
                tag="simd",
                filename="ckpt_best.pth",
                sources=(
                    WeightSource("gdrive", "1kmhQtO-6wXTxgHtQCLRj3xPOEtXyzTXC", note="Google Drive, " + _REPO),
                    WeightSource(
                        kind="manual",
                        location="https://drive.google.com/file/d/1kmhQtO-6wXTxgHtQCLRj3xPOEtXyzTXC/view "
                                 "(Google Drive, "
                                 f"'Performance' table of {_REPO}, row SIMD; official path "
                                 "checkpoints/SIM/ckpt_best.pth)"),
                ),
                license=_LICENSE,
                trained_on="SIMD (Semantic Image Matting Dataset: own images + Adobe Deep Image Matting subset)",
                metrics={"SIMD SAD": 27.9, "SIMD MSE (x1e-3)": 4.7, "SIMD Grad": 11.6, "SIMD Conn": 20.8},
                notes="also needs the classifier: `mattecli models import sim.classifier "
                      "classifier_resnet50_best.pth.tar` (or classifier_weights=FILE)",
            ),
            Weights(
                tag="adobe",
                filename="ckpt_best.pth",
                sources=(
                    WeightSource("gdrive", "1uUIhzBKyTRfu0Ylhm0O9pyV9TayPaODt", note="Google Drive, " + _REPO),
                    WeightSource(
                        kind="manual",
                        location="https://drive.google.com/file/d/1uUIhzBKyTRfu0Ylhm0O9pyV9TayPaODt/view "
                                 "(Google Drive, "
                                 f"'Performance' table of {_REPO}, row Composition-1K; official path "
                                 "checkpoints/Adobe/ckpt_best.pth)"),
                ),
                license=_LICENSE,
                trained_on="Adobe Deep Image Matting dataset (Composition-1K)",
                metrics={"Composition-1k SAD": 27.7, "Composition-1k MSE (x1e-3)": 5.6,
                         "Composition-1k Grad": 10.7, "Composition-1k Conn": 24.4},
                notes="same classifier as the SIMD model",
            ),
            Weights(
                tag="classifier",
                filename="classifier_resnet50_best.pth.tar",
                sources=(
                    WeightSource("gdrive", "12JCGqDylBXJpgDhj4hg_JZYdbHlX8TKe", note="Google Drive, " + _REPO),
                    WeightSource(
                        kind="manual",
                        location="https://drive.google.com/file/d/12JCGqDylBXJpgDhj4hg_JZYdbHlX8TKe/view "
                                 "(Google Drive, "
                                 f"'Run' section of {_REPO}; official path "
                                 "checkpoints/classifier_resnet50_best.pth.tar)"),
                ),
                license=_LICENSE,
                trained_on="SIMD patches, 20 matting-pattern classes",
                notes="semantic-trimap classifier used by sim and sim.adobe, not a matting model by itself; "
                      "{'state_dict': {'module.' + key}}",
            ),
        ),
        precisions=("fp32", "bf16", "fp16"),
        code_license="not stated (no licence file in nowsyn/SIM)",
        origin="https://github.com/nowsyn/SIM@dc5ed5a594fda16d3bd0a8d114b8740d876c12c8",
        options={"classifier_weights": Option(None, "str", nullable=True, none_means="the cached sim.classifier",
                                               help="file of the semantic-trimap classifier")},
        quality=85,
        memory=MemoryModel(base_mb=189, per_pixel=2101),
        # benchmarks/runtimes.py --models sim (2-core AVX-512 CPU, predict, vs eager torch; the matting network and the
        # classifier on the engine): OpenVINO 1.57x / 2.15x at 512x512 / 1080p, onnxruntime 1.51x / 2.03x
        runtimes={"cpu": ("openvino", "onnxruntime")},
    ),
]
