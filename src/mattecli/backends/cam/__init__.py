"""Context-Aware Matting (Hou & Liu, ICCV 2019), TensorFlow 1 checkpoints read without TensorFlow. Data only."""
from ...options import Option
from ...registry import MemoryModel, ModelEntry, Weights, WeightSource

_PAPER = ("Hou, Liu: Context-Aware Image Matting for Simultaneous Foreground and Alpha Estimation, ICCV 2019 "
          "(arXiv:1909.09725)")
_URL = "http://web.cecs.pdx.edu/~qiqi2/files/papers/conmat/files/model.tgz"
_LICENSE = ("research only (README: 'The provided implementation is for research purposes only'; commercial use: "
            "contact the authors)")
_ORIGIN = "https://github.com/hqqxyy/Context-Aware-Matting @ e7b7367d35a99c69d4f2e1b8b459ef8cdb7edc10"
_OPTIONS = {
    "vis_patch_crop_size": Option(None, "str", nullable=True, none_means="the whole image",
                                  help="HEIGHT,WIDTH crop of the patch encoder's input (official demo flag)"),
    "vis_comp_crop_size": Option(None, "str", nullable=True, none_means="the whole image",
                                 help="HEIGHT,WIDTH crop of the context encoder's input (official demo flag)"),
    "tile": Option(0, "int", min=0, help="0 = off; else tiles of 16k+1 >= 65 px (bounded memory, slightly "
                                         "different results)"),
}


def _weights(tag: str, sub: str, what: str) -> Weights:
    return Weights(
        tag=tag,
        filename="model.tgz",
        sources=(WeightSource(kind="url", location=_URL,
                              note=f"README 'Download codes and models'; the archive holds model/{sub}/model.ckpt.*"),),
        format="tf-checkpoint",
        license=_LICENSE,
        trained_on="Adobe Image Matting (Composition-1k train)" + (" + data augmentation for real images"
                                                                  if "da" in tag else ""),
        notes=f"{what}; import the authors' model.tgz, the model/{sub}/ folder or its model.ckpt.index "
              "(with the .data-00000-of-00001 file next to it)",
        extra_files=("model.ckpt.index", "model.ckpt.data-00000-of-00001"),
    )


def _entry(name, sub, what, color=False, aliases=(), quality=70):
    return ModelEntry(
        name=name,
        family="cam",
        summary=f"Context-Aware Matting, {what}",
        paper=_PAPER,
        requires=frozenset({"trimap"}),
        outputs=("alpha", "foreground") if color else ("alpha",),
        adapter="mattecli.backends.cam.adapter:CAMAdapter",
        weights=(_weights(name.split(".", 1)[1], sub, what),),
        precisions=("fp32",),  # bf16 moved alpha by up to 1.0 on the synthetic-weight benchmark
        code_license="research only (no licence file; README: research purposes only)",
        origin=_ORIGIN,
        aliases=aliases,
        options=dict(_OPTIONS),
        quality=quality,
        memory=MemoryModel(base_mb=322, per_pixel=36, per_net_pixel=3350, net="tile", net_option="tile", tiles=True),   # the three variants: the largest
    )


ENTRIES = [
    _entry("cam.lap", "lap", "model (3) ME+CE+lap: alpha", aliases=("cam",)),
    _entry("cam.lap-fea-da", "lap_fea_da", "model (5) ME+CE+lap+fea+DA: alpha (the authors' pick for real images)",
           quality=72),
    _entry("cam.lap-fea-da-color", "lap_fea_da_color", "model (7) ME+CE+lap+fea+color+DA: alpha + foreground colour",
           color=True, quality=71),
]
