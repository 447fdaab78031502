"""`mattecli matte --align/--tta` routing to the model's own options."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mattecli.cli.app import app

EX = Path(__file__).resolve().parents[1] / "examples" / "data"


def test_align_refused_for_a_model_without_plate(tmp_path):
    r = CliRunner().invoke(app, ["matte", str(EX / "hair.png"), "--trimap", str(EX / "hair_trimap.png"),
                                 "--model", "closed-form", "--align", "-o", str(tmp_path)])
    assert r.exit_code == 2
    assert "--align" in r.output and "closed-form" in r.output
    assert not any(tmp_path.iterdir())


def test_warnings_are_one_line():
    import warnings

    import mattecli.cli.app  # noqa: F401  (installs the formatter)

    text = warnings.formatwarning("plate alignment failed\nsecond line", UserWarning, "x.py", 1)
    assert text == "mattecli: warning: plate alignment failed\n"


def test_video_align_refused_for_rvm(tmp_path):
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")  # never opened: the flag check comes first
    r = CliRunner().invoke(app, ["video", str(clip), "--model", "rvm", "--align", "-o", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and "--align" in r.output
    assert not (tmp_path / "o.mp4").exists()
