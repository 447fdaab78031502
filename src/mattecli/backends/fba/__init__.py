"""FBA Matting registry data (no torch import here)."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

ENTRIES = [
    ModelEntry(
        name="fba",
        family="fba",
        summary="FBA Matting: ResNet-50 GN+WS encoder, predicts alpha, foreground and background (trimap)",
        paper="Forte & Pitie, F, B, Alpha Matting, arXiv:2003.07711 (2020)",
        requires=frozenset({"trimap"}),
        outputs=("alpha", "foreground", "background"),
        adapter="mattecli.backends.fba.adapter:FBAAdapter",
        weights=(
            Weights(
                tag="default",
                filename="FBA.pth",
                sources=(
                    WeightSource(kind="gdrive", location="1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1",
                                 note="Google Drive file of the 'Models' table of github.com/MarcoForte/FBA_Matting"),
                    WeightSource(
                        kind="manual",
                        location="https://drive.google.com/file/d/1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1/view "
                                 "(Google Drive, linked from the 'Models' table of github.com/MarcoForte/FBA_Matting)"),
                ),
                format="torch",
                size=None,
                license="non-commercial: covered by the Adobe Deep Image Matting Dataset License Agreement, "
                        "noncommercial use and distribution only (authors' README)",
                trained_on="Adobe Deep Image Matting dataset",
                metrics={"Composition-1k SAD": 26.4, "Composition-1k MSE (x1e-3)": 5.4,
                         "Composition-1k Grad": 10.6, "Composition-1k Conn": 21.5},
                notes="plain state dict (torch.save(model.state_dict())); about 139 MB",
            ),
        ),
        precisions=("fp32", "bf16", "fp16"),
        code_license="MIT (MarcoForte/FBA_Matting)",
        origin="https://github.com/MarcoForte/FBA_Matting@8dd100d760186150710510ee8d78ed916cdb17a4",
        options={
            "tta": Option(False, "choice", choices=(False, True, "flip", "d4"),
                          help="test-time augmentation: true/d4 = 8 flips and rotations averaged, flip = 2 views"),
            "tile": Option(None, "int", min=64, nullable=True, none_means="whole image",
                           help="run on overlapping tiles of this size (bounded memory, slightly different results)"),
            "tile_overlap": Option(128, "int", min=0, help="overlap of tiles in pixels (linear blending)"),
        },
        quality=90,
        memory=MemoryModel(base_mb=122, per_pixel=138, per_net_pixel=1583, net="tile", net_option="tile", tiles=True),
        # benchmarks/runtimes.py --models fba (2-core AVX-512 CPU, predict, vs eager torch): OpenVINO 1.21x / 1.33x at
        # 512x512 / 1080p, onnxruntime 1.19x / 0.84x
        runtimes={"cpu": ("openvino",)},
    ),
]
