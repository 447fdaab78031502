"""PP-Matting (PaddleSeg Matting), HRNet-W18 human models (registry data only)."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_ZOO = "https://paddleseg.bj.bcebos.com/matting/models/"
_NOTE = "PaddleSeg Matting/README.md model zoo table"


def _weights(tag, filename, row, metrics):
    return Weights(
        tag=tag, filename=filename, format="pdparams",
        sources=(WeightSource("url", _ZOO + filename, note=f"{_NOTE}, row '{row}'"),),
        license="Apache-2.0 (released with PaddleSeg)",
        trained_on="PaddleSeg's human matting training data (not specified beyond 'human'); "
                   "ImageNet-pretrained HRNet-W18 backbone",
        metrics=metrics,
        notes="Paddle .pdparams (pickle of numpy arrays) read without Paddle by a restricted unpickler",
    )


ENTRIES = [
    ModelEntry(
        name="ppmatting",
        family="ppmatting",
        summary="PP-Matting, trimap-free high-accuracy matting with an HRNet-W18 backbone (human models)",
        paper="Chen et al., PP-Matting: High-Accuracy Natural Image Matting, arXiv:2204.09433 (2022)",
        outputs=("alpha",),
        adapter="mattecli.backends.ppmatting.adapter:PPMattingAdapter",
        weights=(
            _weights("hrnet_w18", "ppmatting-hrnet_w18-human_512.pdparams", "PP-Matting-512",
                     {"PPM-AIM-195 SAD": 31.56, "MSE": 0.0022, "Grad": 31.80, "Conn": 30.13}),
            _weights("hrnet_w18-1024", "ppmatting-hrnet_w18-human_1024.pdparams", "PP-Matting-1024",
                     {"PPM-AIM-195 SAD": 66.22, "MSE": 0.0088, "Grad": 32.90, "Conn": 64.80}),
        ),
        precisions=("fp32", "fp16", "bf16"),
        code_license="Apache-2.0",
        origin="github.com/PaddlePaddle/PaddleSeg @ d7975e7cb3b9 (Matting/ppmatting)",
        aliases=("pp-matting", "ppmatting.hrnet_w18-512"),
        options={"max_short": Option(None, "int", min=32, nullable=True, none_means="the config's own limit",
                                      help="limit of the short side before inference")},
        quality=60,
        memory=MemoryModel(base_mb=118, per_pixel=12, per_net_pixel=2027, net="short_side", net_option="max_short",
                           net_default=1024),
    ),
]
