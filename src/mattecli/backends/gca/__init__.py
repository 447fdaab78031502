"""GCA Matting registry data (no torch import here)."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_LICENSE = ("non-commercial: covered by the Adobe Deep Image Matting Dataset License Agreement, noncommercial use "
            "and distribution only (authors' README)")

ENTRIES = [
    ModelEntry(
        name="gca",
        family="gca",
        summary="GCA Matting: ResNet-34-style encoder-decoder with guided contextual attention (trimap)",
        paper="Li & Lu, Natural Image Matting via Guided Contextual Attention, AAAI 2020 (arXiv:2001.04069)",
        requires=frozenset({"trimap"}),
        outputs=("alpha",),
        adapter="mattecli.backends.gca.adapter:GCAAdapter",
        weights=(
            Weights(
                tag="dist-all-data",
                filename="gca-dist-all-data.pth",
                sources=(
                    WeightSource(kind="gdrive", location="1GrFrV7guwOQB3N1-bx1iByw_LJNYnIw_",
                                 note="Google Drive file of the 'Models' table of github.com/Yaoyi-Li/GCA-Matting"),
                    WeightSource(
                        kind="manual",
                        location="https://drive.google.com/open?id=1GrFrV7guwOQB3N1-bx1iByw_LJNYnIw_ (Google Drive, "
                                 "'Models' table of github.com/Yaoyi-Li/GCA-Matting)"),
                ),
                license=_LICENSE,
                trained_on="Adobe Deep Image Matting dataset + Composition-1k test set (alphamatting.com model)",
                notes="{'iter','loss','state_dict'} with 'module.' keys; about 96.5 MB",
            ),
            Weights(
                tag="dist",
                filename="gca-dist.pth",
                sources=(
                    WeightSource(kind="gdrive", location="1ti_a46lKEH2Hk2fAB11BbyKfYj0rxNK0",
                                 note="Google Drive file of the 'Models' table of github.com/Yaoyi-Li/GCA-Matting"),
                    WeightSource(
                        kind="manual",
                        location="https://drive.google.com/open?id=1ti_a46lKEH2Hk2fAB11BbyKfYj0rxNK0 (Google Drive, "
                                 "'Models' table of github.com/Yaoyi-Li/GCA-Matting)"),
                ),
                license=_LICENSE,
                trained_on="Adobe Deep Image Matting dataset",
                metrics={"Composition-1k SAD": 35.28, "Composition-1k MSE": 0.0091,
                         "Composition-1k Grad": 16.92, "Composition-1k Conn": 32.53},
                notes="model of Table 2 of the paper; same layout as gca-dist-all-data.pth; about 96.5 MB",
            ),
        ),
        precisions=("fp32", "bf16", "fp16"),
        code_license="MIT (Yaoyi-Li/GCA-Matting)",
        origin="https://github.com/Yaoyi-Li/GCA-Matting@5a999be4b00bb482658fa7013a74a2b8acddc78e",
        options={
            "tile": Option(None, "int", min=64, nullable=True, none_means="whole image",
                           help="run on overlapping tiles of this size (bounded memory; attention becomes local)"),
            "tile_overlap": Option(128, "int", min=0, help="overlap of tiles in pixels (linear blending)"),
        },
        quality=80,
        memory=MemoryModel(base_mb=100, per_pixel=37, per_net_pixel=837, net="tile", net_option="tile", tiles=True),
    ),
]
