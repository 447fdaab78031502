"""Classical (optimisation-based) matting via pymatting: registry data only (no heavy imports here).

All six need an image and a trimap and no weights. ``closed-form`` (the default model) runs our JIT-free solver
(``backends/classical/closed_form.py``: the same linear system as pymatting's, solved exactly); ``--option
solver=pymatting`` and the five other methods call pymatting's ``estimate_alpha_*`` with pymatting's own defaults, so
their alpha equals calling pymatting directly (pymatting compiles its numba kernels on first use: about a minute,
once, cached). ``--option`` names are the keyword arguments of pymatting's Laplacian / solver (``epsilon``,
``radius``, ``rtol``, ``maxiter`` ...).
"""
from __future__ import annotations

from ...options import Option
from ...registry import MemoryModel, ModelEntry

_ADAPTER = "mattecli.backends.classical.adapter:ClassicalBackend"
_ORIGIN = "pymatting/pymatting (pymatting>=1.1.10), MIT"
_CG = {"rtol": Option(1e-7, "float", min=0, min_open=True, help="relative tolerance of the conjugate-gradient solve"),
       "maxiter": Option(10000, "int", min=1, help="iterations of the conjugate-gradient solve")}
_EPS = Option(1e-7, "float", min=0, help="regularisation of the matting Laplacian")


def _radius(default):
    return Option(default, "int", min=1, max=64, help="window radius of the matting Laplacian")


def _entry(name, summary, paper, options, quality, aliases=(), memory=None):
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
        memory=memory,
    )


ENTRIES = [
    _entry("closed-form", "Closed-form matting (matting Laplacian, sparse solve); the default without trained weights",
           "Levin, Lischinski, Weiss: A Closed-Form Solution to Natural Image Matting, CVPR 2006 / TPAMI 2008",
           {"epsilon": _EPS, "radius": _radius(1),
            "solver": Option("direct", "choice", choices=("direct", "pymatting"),
                             help="direct: exact sparse LDLT solve, no JIT compilation (default); pymatting: "
                                  "pymatting's ichol-preconditioned CG, bit-identical to it (compiled on first use)"),
            **_CG}, quality=5, aliases=("cf",),
           memory=MemoryModel(base_mb=24, per_pixel=56, per_net_pixel=1559, exponent=1.1, net="unknown",
                              window_option="radius",
                              variants=(("solver", "pymatting", MemoryModel(base_mb=150, per_pixel=60, per_net_pixel=439,
                                                                            window_option="radius")),))),
    _entry("knn", "KNN matting (nonlocal neighbours in colour+position space)",
           "Chen, Li, Tang: KNN Matting, CVPR 2012 / TPAMI 2013",
           {"kernel": Option("binary", "choice", choices=("binary", "soft"), help="KNN affinity kernel"), **_CG}, quality=3,
           memory=MemoryModel(base_mb=166, per_pixel=3408)),
    _entry("lkm", "Large-kernel matting Laplacian (fast, box-filter based)",
           "He, Sun, Tang: Fast Matting Using Large Kernel Matting Laplacian Matrices, CVPR 2010",
           {"epsilon": _EPS, "radius": _radius(10), **_CG}, quality=2,
           memory=MemoryModel(base_mb=149, per_pixel=475)),
    _entry("rw", "Random-walk matting",
           "Grady, Schiwietz, Aharon, Westermann: Random Walks for Interactive Alpha-Matting, VIIP 2005",
           {"sigma": Option(0.033, "float", min=0, min_open=True, help="colour similarity scale"),
            "radius": _radius(1), "regularization": Option(1e-8, "float", min=0, help="diagonal regularisation"), **_CG}, quality=1,
           memory=MemoryModel(base_mb=149, per_pixel=60, per_net_pixel=537, window_option="radius")),
    _entry("sm", "Shared matting (sampling based, no linear solve)",
           "Gastal, Oliveira: Shared Sampling for Real-Time Alpha Matting, Eurographics 2010",
           {"trimap_expansion_radius": Option(10, "int", min=0), "trimap_expansion_threshold": Option(0.02, "float", min=0),
            "sample_gathering_angles": Option(4, "int", min=1), "sample_gathering_Np_radius": Option(1, "int", min=0),
            "sample_refinement_radius": Option(5, "int", min=0), "local_smoothing_radius1": Option(5, "int", min=0),
            "local_smoothing_radius2": Option(5, "int", min=0), "local_smoothing_radius3": Option(5, "int", min=0),
            "local_smoothing_sigma_sq1": Option(None, "float", min=0, min_open=True, nullable=True,
                                                none_means="pymatting's default"),
            "local_smoothing_sigma_sq2": Option(0.1, "float", min=0, min_open=True),
            "local_smoothing_sigma_sq3": Option(None, "float", min=0, min_open=True, nullable=True,
                                                none_means="pymatting's default")}, quality=1,
           memory=MemoryModel(base_mb=148, per_pixel=176)),
    _entry("lbdm", "Learning-based digital matting (local learned Laplacian)",
           "Zheng, Kambhamettu: Learning Based Digital Matting, ICCV 2009",
           {"epsilon": _EPS, "radius": _radius(1), **_CG}, quality=4,
           memory=MemoryModel(base_mb=150, per_pixel=60, per_net_pixel=2573, window_option="radius")),
]
