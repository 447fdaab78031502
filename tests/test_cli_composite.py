"""`mattecli composite` and imaging.composite: colours, image fits, blur, straight/premultiplied RGBA."""
from __future__ import annotations

import numpy as np
import pytest

from foundation_helpers import invoke, one_line_error, small_example, write_example
from mattecli.errors import UsageError
from mattecli.imaging import composite as C
from mattecli.imaging.io import read_image, read_png_text, write_image


def test_parse_colour():
    np.testing.assert_allclose(C.parse_colour("#ff8000"), [1, 128 / 255, 0])
    np.testing.assert_allclose(C.parse_colour("#0f0"), [0, 1, 0])
    np.testing.assert_allclose(C.parse_colour("0,0,255"), [0, 0, 1])
    np.testing.assert_allclose(C.parse_colour("0.5, 0.5, 0.5"), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(C.parse_colour("White"), [1, 1, 1])
    for bad in ("#12", "300,0,0", "purpleish", "1,2"):
        with pytest.raises(UsageError):
            C.parse_colour(bad)


def test_fit_modes_geometry():
    bg = np.zeros((10, 20, 3), np.float32)
    bg[:, :10] = 1.0  # left half white
    cover = C.fit_background(bg, (10, 10), "cover")
    assert cover.shape == (10, 10, 3) and cover[:, :4].min() == 1.0 and cover[:, 6:].max() == 0.0
    contain = C.fit_background(bg, (20, 20), "contain", fill=np.array([0, 0, 1], np.float32))
    assert contain.shape == (20, 20, 3)
    assert (contain[:5, :, 2] == 1).all() and (contain[15:, :, 2] == 1).all()  # letterbox bands
    stretch = C.fit_background(bg, (5, 40), "stretch")
    assert stretch.shape == (5, 40, 3) and stretch[:, :18].min() > 0.99
    with pytest.raises(UsageError):
        C.fit_background(bg, (5, 5), "tile")


def test_rgba_and_blend_formulas():
    fg = np.full((2, 2, 3), 0.8, np.float32)
    a = np.array([[0, 0.25], [0.5, 1]], np.float32)
    bg = np.full((2, 2, 3), 0.2, np.float32)
    np.testing.assert_allclose(C.blend(fg, a, bg)[..., 0], 0.2 + 0.6 * a, atol=1e-6)
    np.testing.assert_allclose(C.rgba(fg, a)[..., :3], fg)
    np.testing.assert_allclose(C.rgba(fg, a, premultiplied=True)[..., 0], 0.8 * a, atol=1e-6)
    np.testing.assert_allclose(C.blend_premultiplied(fg * a[..., None], a, bg), C.blend(fg, a, bg), atol=1e-6)


@pytest.fixture
def ex(tmp_path):
    return write_example(tmp_path / "d", parts=("image", "alpha", "fg"))


def test_colour_with_given_foreground_is_exact(tmp_path, ex):
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--foreground", ex["fg"], "--composite-bg", "white",
               "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    got = read_image(tmp_path / "o" / "hair_composite.png").astype(np.float32) / 255
    e = small_example()
    a = e["hair_alpha"][..., None] / 255.0
    want = a * (e["hair_fg"] / 255.0) + (1 - a) * 1.0
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6


def test_rgba_straight_and_premultiplied_metadata(tmp_path, ex):
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--foreground", ex["fg"], "-T", "rgba", "-o", tmp_path / "s")
    assert r.exit_code == 0, r.stderr
    s = tmp_path / "s" / "hair_rgba.png"
    assert read_png_text(s)["alpha-mode"] == "straight"
    np.testing.assert_array_equal(read_image(s)[..., :3], small_example()["hair_fg"])
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--foreground", ex["fg"], "-T", "rgba", "--premultiplied",
               "-o", tmp_path / "p")
    assert r.exit_code == 0, r.stderr
    p = tmp_path / "p" / "hair_rgba.png"
    assert read_png_text(p)["alpha-mode"] == "premultiplied"
    px = read_image(p).astype(np.float32)
    np.testing.assert_allclose(px[..., :3], small_example()["hair_fg"] * px[..., 3:] / 255.0, atol=1.0)


def test_bg_image_fit_blur_and_estimated_foreground(tmp_path, ex):
    write_image(tmp_path / "bg.png", np.full((30, 90, 3), (10, 20, 30), np.uint8))
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--composite-bg", tmp_path / "bg.png", "--fit",
               "contain", "--pad", "red", "-o", tmp_path / "c")
    assert r.exit_code == 0, r.stderr
    c = read_image(tmp_path / "c" / "hair_composite.png")
    assert tuple(c[0, 0]) == (255, 0, 0)  # top-left is padding of the letterboxed plate (alpha 0 there)
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--blur", "3", "--estimate", "none",
               "-o", tmp_path / "b", "--report", tmp_path / "r.json")
    assert r.exit_code == 0, r.stderr
    assert read_image(tmp_path / "b" / "hair_composite.png").shape == (48, 48, 3)


def test_composite_errors(tmp_path, ex):
    for args, needle in ((["-T", "rgba", "--blur", "2"], "--blur"),
                         (["--composite-bg", "black", "--blur", "2"], "nothing to blur"),
                         (["--blur", "0"], "--blur 0"),
                         (["--composite-bg", "no-such-colour"], "--composite-bg"),
                         (["--premultiplied"], "--premultiplied"),
                         (["-T", "rgba", "--format", "jpg"], "jpg"),
                         (["-T", "cutout,matte"], "--output-type")):
        r = invoke("composite", ex["image"], "--alpha", ex["alpha"], *args, "-o", tmp_path / "o")
        assert r.exit_code == 2 and needle in one_line_error(r), (args, r.stderr)
    small = tmp_path / "small_alpha.png"
    write_image(small, np.zeros((10, 10), np.uint8))
    r = invoke("composite", ex["image"], "--alpha", small, "--composite-bg", "black", "-o", tmp_path / "o")
    assert r.exit_code == 1 and str(small) in one_line_error(r)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_subprocess(tmp_path, ex):
    import os
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "mattecli", "composite", str(ex["image"]), "--alpha", str(ex["alpha"]),
                        "--foreground", str(ex["fg"]), "--composite-bg", "0,0,255", "-o", str(tmp_path / "c.png")],
                       capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"), timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(tmp_path / "c.png")
    c = read_image(tmp_path / "c.png")
    a = small_example()["hair_alpha"]
    assert (c[a == 0] == [0, 0, 255]).all()


def test_bg_image_folder_paired_by_stem(tmp_path):
    ex = write_example(tmp_path / "d", parts=("image", "alpha", "fg", "bg"))
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--foreground", ex["fg"],
               "--composite-bg", tmp_path / "d", "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    got = read_image(tmp_path / "o" / "hair_composite.png").astype(int)
    assert np.abs(got - small_example()["hair"]).max() <= 2  # re-composited onto its own background


def test_partner_files_in_the_input_folder_are_not_inputs(tmp_path):
    d = tmp_path / "data"
    write_example(d, parts=("image", "alpha", "fg", "trimap", "bg"))
    r = invoke("composite", d, "--alpha", d, "--foreground", d, "--composite-bg", "white", "-o", tmp_path / "cx")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "cx" / "hair_composite.png")]
    # and a second run with the outputs in the input folder: they are neither inputs nor replaced
    for want in ([str(d / "hair_rgba.png")], []):
        r = invoke("composite", d, "--alpha", d, "-T", "rgba", "-o", d)
        assert r.exit_code == 0, r.stderr
        assert r.stdout.split() == want


def test_single_file_conflicts_are_usage_errors(tmp_path):
    ex = write_example(tmp_path / "d", parts=("image", "alpha"))
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "-T", "rgba", "-o", tmp_path / "one_rgba.jpg")
    assert r.exit_code == 2 and "JPEG" in one_line_error(r)
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--composite-bg", "red", "--format", "jpg",
               "-o", tmp_path / "one.png")
    assert r.exit_code == 2 and "disagree" in one_line_error(r)
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--composite-bg", "red", "-o", tmp_path / "one.jpg")
    assert r.exit_code == 0, r.stderr


def test_default_output_white_background_and_rerun(tmp_path, ex):
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--foreground", ex["fg"])
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "d" / "hair_composite.png"
    assert r.stdout.split() == [str(out)]
    a = small_example()["hair_alpha"]
    assert (read_image(out)[a == 0] == 255).all()                # white by default
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--composite-bg", "black")
    assert r.exit_code == 0 and r.stdout == "" and "1 skipped" in r.stderr, r.stderr
    assert (read_image(out)[a == 0] == 255).all()                # not replaced silently
    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--composite-bg", "black", "--overwrite")
    assert r.exit_code == 0 and r.stdout.split() == [str(out)], r.stderr
    assert (read_image(out)[a == 0] == 0).all()


def test_blur_alone_blurs_the_input_and_both_types(tmp_path, ex):
    from mattecli.imaging.composite import blurred

    r = invoke("composite", ex["image"], "--alpha", ex["alpha"], "--foreground", ex["fg"], "--blur", "2",
               "-T", "composite,rgba", "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "o" / "hair_composite.png"), str(tmp_path / "o" / "hair_rgba.png")]
    e = small_example()
    want = blurred(e["hair"] / 255.0, 2.0)
    got = read_image(tmp_path / "o" / "hair_composite.png") / 255.0
    bgpix = e["hair_alpha"] == 0
    assert np.abs(got[bgpix] - want[bgpix]).max() <= 1 / 255 + 1e-6


def test_a_missing_alpha_fails_that_input_only(tmp_path):
    for n in ("a", "b"):
        write_example(tmp_path / "img", name=n, parts=("image",))
    write_example(tmp_path / "al", name="b", parts=("alpha",))
    r = invoke("composite", tmp_path / "img", "--alpha", tmp_path / "al", "-o", tmp_path / "o", "--report",
               tmp_path / "r.json")
    assert r.exit_code == 1
    assert r.stdout.split() == [str(tmp_path / "o" / "b_composite.png")]
    assert "--alpha: no alpha for" in one_line_error(r)


def test_stdin_to_stdout(tmp_path, ex):
    from foundation_helpers import runner
    from mattecli.cli.app import app

    r = runner().invoke(app, ["composite", "-", "--alpha", str(ex["alpha"]), "--foreground", str(ex["fg"]),
                              "-o", "-"], input=ex["image"].read_bytes())
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*composite*"))


def test_task_pickles_without_its_cache(tmp_path, ex):
    import pickle

    from mattecli.batch import Item
    from mattecli.tasks.composite import CompositeTask

    task = CompositeTask(types=["composite"], colour=np.zeros(3, np.float32))
    task._cache["x"] = np.zeros((2, 2, 3))
    back = pickle.loads(pickle.dumps(task))
    assert back._cache == {} and back.types == ["composite"]
    it = Item(path=ex["image"], rel=ex["image"].relative_to(tmp_path / "d"), partners={"alpha": ex["alpha"]})
    it.info["outputs"] = [tmp_path / "c.png"]
    assert back(it)["outputs"] == [tmp_path / "c.png"]
    assert (read_image(tmp_path / "c.png")[small_example()["hair_alpha"] == 0] == 0).all()
