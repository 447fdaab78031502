"""Background Matting v1 (registry data only; no torch import here)."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_ORIGIN = "github.com/senguptaumd/Background-Matting @ 90765850422621f38ec9f912059cfcad1a8a592b"
_GDRIVE = "https://drive.google.com/drive/folders/1WLDBC_Q-cA72QC8bB-Rdj53UB2vSPnXv (README 'Pre-trained model')"
_LICENSE = "CC BY-NC-SA 4.0 (README 'License': the whole work; non-commercial, share-alike)"


def _w(tag: str, filename: str, trained_on: str, note: str) -> Weights:
    return Weights(
        tag=tag,
        filename=filename,
        sources=(WeightSource("gdrive", "1WLDBC_Q-cA72QC8bB-Rdj53UB2vSPnXv", member=f"{tag}/{note.split()[0]}",
                              note="Google Drive folder of the README, Models/"),
                 WeightSource("manual", _GDRIVE, note=f"file Models/{tag}/{note}")),
        format="torch",
        license=_LICENSE,
        trained_on=trained_on,
        notes="state dict of nn.DataParallel(ResnetConditionHR) ('module.' prefix)",
    )


ENTRIES = [
    ModelEntry(
        name="bgm",
        family="bgm",
        summary="Background Matting v1: image + captured background + soft person segmentation -> alpha and "
                "foreground (crop around the person, 512x512 network)",
        paper="Sengupta et al., Background Matting: The World is Your Green Screen, CVPR 2020 (arXiv:2004.00626)",
        requires=frozenset({"background"}),
        outputs=("alpha", "foreground"),
        adapter="mattecli.backends.bgm.adapter:BGMAdapter",
        weights=(
            _w("real-fixed-cam", "netG_epoch_12.pth",
               "Adobe composites, then self-supervised adversarial training on the authors' fixed-camera videos",
               "netG_epoch_12.pth"),
            _w("real-hand-held", "netG_epoch_12.pth",
               "Adobe composites, then self-supervised adversarial training on the authors' hand-held videos",
               "netG_epoch_12.pth"),
            _w("syn-comp-adobe", "netG_syn-comp-adobe.pth",
               "Adobe Deep Image Matting training set composites only (README: the model used for the numbers on "
               "Adobe)",
               "netG_epoch_*.pth (import it under any name)"),
        ),
        precisions=("fp32", "fp16"),
        code_license="CC BY-NC-SA 4.0",
        origin=_ORIGIN,
        options={
            # ours: registry segmenter producing the person mask when predict_batch() gets no segmentation=
            "segmenter": Option("bisenetv2.cocostuff", "str", nullable=True,
                                none_means="masks must be passed as predict_batch(segmentation=...)",
                                help="registry segmenter (or trimap-free matting model) for the person mask"),
        },
        quality=60,
        memory=MemoryModel(base_mb=728, per_pixel=36),
        # benchmarks/runtimes.py (2-core AVX-512 CPU, predict, one thread; the network always sees 512x512 crops):
        # openvino 1.5x / 1.6x at 512x512 / 1080p, onnxruntime 1.35x / 1.26x faster than eager torch
        runtimes={"cpu": ("openvino", "onnxruntime")},
    ),
]
