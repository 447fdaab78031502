"""Classical (optimisation-based) matting via pymatting: registry data only (no heavy imports here).

All six need an image and a trimap and no weights. ``predict`` calls pymatting's ``estimate_alpha_*`` with pymatting's
own defaults, so the alpha equals calling pymatting directly on the same float64 image and trimap. ``--option``
names are the keyword arguments of pymatting's Laplacian / solver (``epsilon``, ``radius``, ``rtol``, ``maxiter`` ...).
"""
from __future__ import annotations

from ...registry import ModelEntry

_ADAPTER = "mattecli.backends.classical.adapter:ClassicalBackend"
_ORIGIN = "pymatting/pymatting (pymatting>=1.1.10), MIT"
_CG = {"rtol": 1e-7, "maxiter": 10000}


def _entry(name, summary, paper, options, quality, aliases=()):
    return ModelEntry(
        name=name,
        family="classical",
        summary=summary,
        paper=paper,
        requires=frozenset({"trimap"}),
        outputs=("alpha",),
        adapter=_ADAPTER,
        code_license="MIT (pymatting)",
        origin=_ORIGIN,
        aliases=tuple(aliases),
        options=options,
        quality=quality,
    )


ENTRIES = [
    _entry("closed-form", "Closed-form matting (matting Laplacian, sparse solve); the default without trained weights",
           "Levin, Lischinski, Weiss: A Closed-Form Solution to Natural Image Matting, CVPR 2006 / TPAMI 2008",
           {"epsilon": 1e-7, "radius": 1, **_CG}, quality=5, aliases=("cf",)),
    _entry("knn", "KNN matting (nonlocal neighbours in colour+position space)",
           "Chen, Li, Tang: KNN Matting, CVPR 2012 / TPAMI 2013",
           {"kernel": "binary", **_CG}, quality=3),
    _entry("lkm", "Large-kernel matting Laplacian (fast, box-filter based)",
           "He, Sun, Tang: Fast Matting Using Large Kernel Matting Laplacian Matrices, CVPR 2010",
           {"epsilon": 1e-7, "radius": 10, **_CG}, quality=2),
    _entry("rw", "Random-walk matting",
           "Grady, Schiwietz, Aharon, Westermann: Random Walks for Interactive Alpha-Matting, VIIP 2005",
           {"sigma": 0.033, "radius": 1, "regularization": 1e-8, **_CG}, quality=1),
    _entry("sm", "Shared matting (sampling based, no linear solve)",
           "Gastal, Oliveira: Shared Sampling for Real-Time Alpha Matting, Eurographics 2010",
           {"trimap_expansion_radius": 10, "trimap_expansion_threshold": 0.02, "sample_gathering_angles": 4,
            "sample_gathering_Np_radius": 1, "sample_refinement_radius": 5, "local_smoothing_radius1": 5,
            "local_smoothing_radius2": 5, "local_smoothing_radius3": 5, "local_smoothing_sigma_sq1": None,
            "local_smoothing_sigma_sq2": 0.1, "local_smoothing_sigma_sq3": None}, quality=1),
    _entry("lbdm", "Learning-based digital matting (local learned Laplacian)",
           "Zheng, Kambhamettu: Learning Based Digital Matting, ICCV 2009",
           {"epsilon": 1e-7, "radius": 1, **_CG}, quality=4),
]
