"""The committed example data is what examples/make_synthetic.py generates, and it is valid ground truth."""
from __future__ import annotations

import numpy as np

from foundation_helpers import ROOT, synthetic_module
from mattecli.imaging.io import read_image
from mattecli.imaging.trimap import read_trimap

DATA = ROOT / "examples" / "data"


def test_committed_files_match_the_generator():
    gen = synthetic_module().generate()  # defaults: size 320, seed 7, band 4
    for name, arr in gen.items():
        np.testing.assert_array_equal(read_image(DATA / f"{name}.png"), arr, err_msg=name)
    total = sum(p.stat().st_size for p in DATA.iterdir())
    assert total < 1_500_000


def test_example_is_consistent_ground_truth():
    gen = synthetic_module().generate(size=64, seed=11, band=2)
    a = gen["hair_alpha"] / 255.0
    img = gen["hair"] / 255.0
    comp = a[..., None] * gen["hair_fg"] / 255.0 + (1 - a[..., None]) * gen["hair_bg"] / 255.0
    assert np.abs(comp - img).max() <= 1.5 / 255  # image = alpha*F + (1-alpha)*B up to 8-bit rounding
    soft = (gen["hair_alpha"] > 0) & (gen["hair_alpha"] < 255)
    assert soft.mean() > 0.05  # really soft, hair-like
    t = gen["hair_trimap"]
    assert (t[soft] == 128).all() and (t[gen["hair_alpha"] == 255] != 0).all()
    tri = read_trimap(DATA / "hair_trimap.png", (320, 320))
    assert set(np.unique(tri)) == {0, 128, 255}
    np.testing.assert_array_equal(synthetic_module().generate(size=64, seed=11, band=2)["hair"], gen["hair"])
