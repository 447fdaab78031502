"""MODNet trimap-free portrait matting (registry data only; no torch import here)."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_ORIGIN = "github.com/ZHKKKe/MODNet @ 28165a451e4610c9d77cfdf925a94610bb2810fb"
_FOLDER = "1umYmlCulvIFNaqPjwod1SayFmSRHziyR"
_GDRIVE = f"https://drive.google.com/drive/folders/{_FOLDER} (linked from pretrained/README.md)"
_LICENSE = ("Apache-2.0 (README 'License': code, models and demos, since 2022-01-28; "
            "earlier copies were released under CC BY-NC-SA 4.0)")

ENTRIES = [
    ModelEntry(
        name="modnet",
        family="modnet",
        summary="MODNet: trimap-free portrait matting from the image alone (MobileNetV2, semantic/detail/fusion "
                "branches); input resized so the short side is 512",
        paper="Ke et al., MODNet: Real-Time Trimap-Free Portrait Matting via Objective Decomposition, AAAI 2022 "
              "(arXiv:2011.11961)",
        outputs=("alpha",),
        adapter="mattecli.backends.modnet.adapter:MODNetAdapter",
        weights=(
            Weights(
                tag="photographic",
                filename="modnet_photographic_portrait_matting.ckpt",
                sources=(
                    WeightSource("gdrive", _FOLDER, member="modnet_photographic_portrait_matting.ckpt",
                                 note="Google Drive folder of pretrained/README.md"),
                    WeightSource("manual", _GDRIVE, note="file modnet_photographic_portrait_matting.ckpt"),
                ),
                license=_LICENSE,
                trained_on="the labelled portrait matting data of the paper (author, issue #125)",
                notes="state dict of nn.DataParallel(MODNet) ('module.' prefix; backbone listed twice)",
            ),
            Weights(
                tag="webcam",
                filename="modnet_webcam_portrait_matting.ckpt",
                sources=(
                    WeightSource("gdrive", _FOLDER, member="modnet_webcam_portrait_matting.ckpt",
                                 note="Google Drive folder of pretrained/README.md"),
                    WeightSource("manual", _GDRIVE, note="file modnet_webcam_portrait_matting.ckpt"),
                ),
                license=_LICENSE,
                trained_on="the photographic model adapted with SOC (self-supervised) on webcam video "
                           "(author, issue #125); meant for the video/webcam demos",
                notes="same layout as the photographic checkpoint",
            ),
        ),
        precisions=("fp32", "fp16"),
        code_license="Apache-2.0",
        origin=_ORIGIN,
        options={"ref_size": Option(512, "int", min=32, help="the official resize target of the short side")},
        quality=50,
        memory=MemoryModel(base_mb=1, per_pixel=12, per_net_pixel=1027, net="ref_side", net_option="ref_size"),
        # benchmarks/runtimes.py (2-core AVX-512 CPU, predict, one thread, vs eager torch): openvino 2.0x at
        # 512x512, 1.5x at 1080p; onnxruntime 1.4x / 1.3x
        runtimes={"cpu": ("openvino", "onnxruntime")},
    ),
]
