"""Deep Image Matting (Xu et al., CVPR 2017) through two community ports (no official code exists). Data only."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_PAPER = "Xu, Price, Cohen, Huang: Deep Image Matting, CVPR 2017 (arXiv:1703.03872)"
_ADOBE_NC = ("non-commercial (research only): trained on the Adobe Image Matting dataset; the authors state the "
             "pre-trained models 'can only be used and distributed for non-commercial purposes'")

ENTRIES = [
    ModelEntry(
        name="dim",
        family="dim",
        summary="Deep Image Matting, VGG-16 encoder-decoder with skip additions (huochaitiantang port, stage 1)",
        paper=_PAPER,
        requires=frozenset({"trimap"}),
        outputs=("alpha",),
        adapter="mattecli.backends.dim.adapter:DIMAdapter",
        weights=(
            Weights(
                tag="huochaitiantang",
                filename="stage1_skip_sad_52.9.pth",
                sources=(WeightSource(
                    kind="url",
                    location="https://github.com/huochaitiantang/pytorch-deep-image-matting/releases/download/V1.5/"
                             "stage1_skip_sad_52.9.pth",
                    note="GitHub release V1.5 (README Performance table)"),),
                format="torch",
                license=_ADOBE_NC,
                trained_on="Adobe Image Matting (Composition-1k train, 43100 composites)",
                metrics={"Composition-1k SAD": 52.99, "Composition-1k MSE": 0.0171, "Composition-1k Grad": 31.56,
                         "Composition-1k Conn": 53.24},
                notes="{'epoch','state_dict','best_sad'}; releases before V1.5 (no skip, 1x1 conv6) do not fit",
            ),
        ),
        precisions=("fp32", "fp16", "bf16"),
        code_license="none stated (huochaitiantang/pytorch-deep-image-matting has no LICENSE file)",
        origin="https://github.com/huochaitiantang/pytorch-deep-image-matting @ f5f909dba65c6538b38b23190af5eb5665b518be",
        options={
            "crop_or_resize": Option("whole", "choice", choices=("whole", "resize", "crop"),
                                     help="the port's test modes: whole image, resize to size_h x size_w, or crops"),
            "max_size": Option(1600, "int", min=32, help="whole mode: longer side limit (multiple of 32)"),
            "size_h": Option(320, "int", min=32, help="resize/crop mode: network input height (multiple of 32)"),
            "size_w": Option(320, "int", min=32, help="resize/crop mode: network input width (multiple of 32)"),
        },
        quality=60,
        memory=MemoryModel(base_mb=50, per_pixel=12, per_net_pixel=1875, net="clamp", net_option="max_size"),
        # benchmarks/runtimes.py --models dim dim.foamliu (2-core AVX-512 CPU, predict, vs eager torch): onnxruntime
        # 1.18x / 1.20x at 512x512 / 1080p (peak +70 / +540 MB), OpenVINO 0.28x / 0.33x (its max-unpooling scatter);
        # dim.foamliu: onnxruntime 1.12x / 0.88x, so torch there
        runtimes={"cpu": ("onnxruntime",)},
    ),
    ModelEntry(
        name="dim.foamliu",
        family="dim",
        summary="Deep Image Matting, SegNet-style VGG-16 with BatchNorm (foamliu port, stage 0)",
        paper=_PAPER,
        requires=frozenset({"trimap"}),
        outputs=("alpha",),
        adapter="mattecli.backends.dim.adapter:DIMFoamliuAdapter",
        weights=(
            Weights(
                tag="foamliu",
                filename="BEST_checkpoint.tar",
                sources=(WeightSource(
                    kind="url",
                    location="https://github.com/foamliu/Deep-Image-Matting-PyTorch/releases/download/v1.0/"
                             "BEST_checkpoint.tar",
                    note="GitHub release v1.0 (README Performance table, my-stage0)"),),
                format="torch-pickle",
                license="unknown (code is MIT; the weights are trained on the Adobe Image Matting dataset, whose "
                        "licence is non-commercial)",
                trained_on="Adobe Image Matting (Composition-1k train)",
                metrics={"Composition-1k SAD": 66.8, "Composition-1k MSE": 0.024},
                notes="a torch pickle of whole objects (DataParallel(DIMModel) + optimizer), not a tar archive; "
                      "read with a restricted unpickler that builds only tensors",
            ),
        ),
        precisions=("fp32", "fp16", "bf16"),
        code_license="MIT",
        origin="https://github.com/foamliu/Deep-Image-Matting-PyTorch @ db6a96de7dd28e0a6746ec4d9a1c2efdf200c701",
        options={},
        quality=50,
        memory=MemoryModel(base_mb=109, per_pixel=913),
    ),
]
