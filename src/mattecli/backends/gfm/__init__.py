"""GFM, Glance and Focus Matting (registry data only): one entry, seven released weight sets (backbone-RoSTa tags)."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_ORIGIN = "github.com/JizhiziLi/GFM @ 4b15ee01a02e"
_GD = "https://drive.google.com/uc?export=download&id="
_BD = "https://pan.baidu.com/s/"
_WHERE = "GFM README 'GFM' table and core/README.md 'Pretrained Models', column {col}"

# tag, file, README column, Google Drive id, Baidu share id, Baidu password
_SETS = (
    ("r34-tt", "gfm_r34_tt.pth", "GFM(r)-TT", "1AdtoIdYTLsjXfVe_a50tin0cFwZMSz93", "14TfNWeDGzXm4w91eHWu28w", "svcv"),
    ("r34-ft", "gfm_r34_ft.pth", "GFM(r)-FT", "1heWT3fodV5so--tG6hoytB11OHBfhd1_", "1GmaXfiWbK09X4zhsRgooBg", "jfli"),
    ("r34-bt", "gfm_r34_bt.pth", "GFM(r)-BT", "1vRWJtD8liZjb7GbNnmJCuO_xN4-bj-2l", "1oaT5R8GnMW-zbbCwie1SlA", "80k8"),
    ("r34-2b-tt", "gfm_r34_2b_tt.pth", "GFM(r2b)-TT", "1Y8dgOprcPWdUgHUPSdue0lkFAUVvW10Q", "1yfRGgI9QFUW9jb878AXHTg",
     "34hf"),
    ("r101-tt", "gfm_r101_tt.pth", "GFM(r')-TT", "1oQMOfVkuxLujgFEQReWJM95chPlQBTiM", "1aKUEB1MYIDbt-8iOHq67zQ",
     "7p8j"),
    ("d121-tt", "gfm_d121_tt.pth", "GFM(d)-TT", "1knbK5uU8AitE5OFpul9FXaQm47pZO0N8", "1AzuMphkNtt5-fJh-VqPnCA", "l6bd"),
    ("d121-rim", "gfm_d121_rim.pth", "GFM(d)-RIM", "1aMY5tJQ79IB-0NJ9WzcTu6ZOQTowiFWv", "1V-YjxUsyzUsTRO8m6JoR_Q",
     "mrf7"),
)

_BACKBONE_NAMES = {"r34": "ResNet-34", "r34-2b": "ResNet-34 + 2 extra blocks", "r101": "ResNet-101",
                   "d121": "DenseNet-121"}


def _weights(tag, filename, col, gd, bd, pw):
    bb, _, rosta = tag.rpartition("-")
    return Weights(
        tag=tag, filename=filename, format="torch",
        sources=(
            WeightSource("gdrive", gd, note="Google Drive; " + _WHERE.format(col=col)),
            WeightSource("manual", _GD + gd, note="Google Drive; " + _WHERE.format(col=col)),
            WeightSource("manual", f"{_BD}{bd} (Baidu Wangpan, password {pw})", note=_WHERE.format(col=col)),
        ),
        license="MIT (the GFM README: 'This project is under the MIT license'; no separate terms for the weights)",
        trained_on="AM-2k ORI-Track (1,800 natural animal training images; core/README.md 'Pretrained Models')",
        notes=(f"backbone {_BACKBONE_NAMES[bb]}, RoSTa {rosta.upper()}; plain state_dict (official load: strict=True) "
               "holding every backbone tensor twice (resnet./densenet. and encoderN. aliases, checked equal) plus the "
               "unused ImageNet classifier" + ("; the sample results in the GFM README use this model"
                                               if tag == "r34-2b-tt" else "")),
    )


ENTRIES = [
    ModelEntry(
        name="gfm",
        family="gfm",
        summary="GFM (Glance and Focus Matting), trimap-free end-to-end matting of animals and other salient "
                "objects; variants backbone-RoSTa (r34-tt default, r34-ft, r34-bt, r34-2b-tt, r101-tt, d121-tt, "
                "d121-rim)",
        paper="Li et al., Bridging Composite and Real: Towards End-to-end Deep Image Matting, IJCV 2022 "
              "(arXiv:2010.16188)",
        outputs=("alpha",),
        adapter="mattecli.backends.gfm.adapter:GFMAdapter",
        weights=tuple(_weights(*s) for s in _SETS),
        precisions=("fp32", "fp16", "bf16"),
        code_license="MIT",
        origin=_ORIGIN + " (core/gfm.py, core/test.py, core/util.py)",
        options={
            "test_choice": Option("HYBRID", "choice", choices=("HYBRID", "RESIZE"),
                                  help="core/test.py: HYBRID = 1/3-scale glance + 1/2-scale focus; RESIZE = one "
                                       "1/2-scale pass (the RIM variant always runs its own 1/3-scale pass)"),
            "pred_choice": Option(None, "int", choices=(1, 2, 3, 4), nullable=True,
                                  none_means="3 fusion, or 4 for RIM",
                                  help="1 glance, 2 focus, 3 fusion (RIM: 1 TT, 2 FT, 3 BT, 4 RIM)"),
            "shorter_path_limitation": Option(1080, "int", min=32, nullable=True, none_means="no limit",
                                              help="images whose short side exceeds it are first resized to it"),
            "max_size": Option(1600, "int", min=32, help="MAX_SIZE_H/W: cap of the network input per side"),
        },
        quality=55,
        memory=MemoryModel(base_mb=591, per_pixel=66, per_net_pixel=642, net="short_side",
                           net_option="shorter_path_limitation"),   # the largest of r34 / r101 / d121
        # benchmarks/runtimes.py --models gfm (r34-tt, 2-core AVX-512 CPU, predict, vs eager torch): OpenVINO 1.69x /
        # 1.31x at 512x512 / 1080p (HYBRID runs the network twice), onnxruntime 1.00x / 0.98x
        runtimes={"cpu": ("openvino",)},
    ),
]
