"""Foreground estimation: the JIT-free multi-level estimator agrees with pymatting's and behaves at the edges."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import need_shared
from mattecli.errors import UsageError
from mattecli.imaging.foreground import estimate_foreground, estimate_foreground_ml
from mattecli.imaging.io import read_grey, read_rgb


@pytest.mark.parametrize("name", ["GT01", "GT04"])
def test_ml_agrees_with_pymatting(name):
    import pymatting

    d = need_shared("data", "alphamatting")
    img = read_rgb(d / "image" / f"{name}.png")[:200, :260] / 255.0
    a = read_grey(d / "gt" / f"{name}.png")[:200, :260]
    ref = pymatting.estimate_foreground_ml(img, a)
    got = estimate_foreground_ml(img, a)
    soft = (a > 0.02) & (a < 0.98)
    assert got.dtype == np.float32 and got.shape == img.shape
    diff = np.abs(got - ref)[soft]
    assert diff.mean() < 3 / 255 and np.percentile(diff, 99) < 30 / 255


def test_ml_recovers_a_known_foreground():
    """Composite a flat red foreground over a texture with a soft alpha: F is found red where alpha > 0.1."""
    rng = np.random.default_rng(0)
    h, w = 64, 80
    bg = rng.random((h, w, 3)).astype(np.float32)
    fg = np.zeros((h, w, 3), np.float32)
    fg[..., 0] = 0.9
    fg[..., 2] = 0.2
    x = np.linspace(0, 1, w, dtype=np.float32)
    alpha = np.broadcast_to(np.clip((x - 0.3) * 3, 0, 1), (h, w)).copy()
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    f = estimate_foreground(img, alpha, "ml")
    assert np.abs(f[alpha > 0.1] - fg[alpha > 0.1]).mean() < 0.05    # pymatting: 0.039
    assert np.abs(f[alpha > 0.5] - fg[alpha > 0.5]).mean() < 0.025   # pymatting: 0.021
    assert f.min() >= 0 and f.max() <= 1


def test_none_and_bad_method():
    img = np.full((4, 5, 3), 128, np.uint8)
    a = np.zeros((4, 5), np.float32)
    np.testing.assert_array_equal(estimate_foreground(img, a, "none"), img / np.float32(255))
    with pytest.raises(UsageError):
        estimate_foreground(img, a, "magic")
    tiny = estimate_foreground_ml(np.ones((1, 1, 3), np.float32), np.ones((1, 1), np.float32))
    assert tiny.shape == (1, 1, 3)
