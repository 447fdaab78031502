"""The video pipeline with the real RVM backend (synthetic official-layout weights from ../shared/oracles)."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from video_helpers import audio_packets, frame_batch, make_clip, read_video

import mattecli
from mattecli.video.encode_plan import plan_output
from mattecli.video.job import VideoJob
from mattecli.video.pipeline import run_video
from mattecli.video.reader import VideoSource

pytestmark = [pytest.mark.shared, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def rvm_official():
    from conftest import Oracle

    return Oracle("rvm_mobilenetv3").torch_weights()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("rvmclip")
    p = d / "src.mp4"
    make_clip(p, n=6, w=64, h=48, rate=Fraction(24000, 1001))
    return p


def _rgba16(src, model, out_dir, batch):
    import cv2

    plan = plan_output("rgba", str(out_dir) + "/", bits=16)
    res = run_video(VideoSource(str(src)), model, VideoJob([plan], batch_size=batch, progress=False))
    return res, [cv2.imread(str(out_dir / f), cv2.IMREAD_UNCHANGED) for f in sorted(os.listdir(out_dir))]


def test_rvm_batch_1_equals_batch_4(clip, rvm_official, tmp_path):
    m = mattecli.load_model("rvm", weights=rvm_official, downsample_ratio=0.5)
    r1, a1 = _rgba16(clip, m, tmp_path / "b1", 1)
    r4, a4 = _rgba16(clip, m, tmp_path / "b4", 4)     # same model object: the pipeline resets its state
    assert r1.frames == r4.frames == 6
    worst = max(int(np.abs(x.astype(np.int64) - y.astype(np.int64)).max()) for x, y in zip(a1, a4))
    assert worst <= 2, worst                          # of 65535: float summation order only
    # the recurrent state matters: frame 3 matted on its own (fresh state) differs from the carried run
    frames = [f.image for f in VideoSource(str(clip)).frames()]
    m.reset()
    fresh = m.predict_batch(frame_batch(frames[3])).alpha[0, 0].float().numpy()
    carried = a4[3][..., 3].astype(np.float32) / 65535
    assert np.abs(fresh - carried).max() > 1e-3


def test_cli_rvm_checkpoint_file(clip, rvm_official, tmp_path):
    import torch
    from typer.testing import CliRunner

    from mattecli.cli.app import app

    ckpt = tmp_path / "rvm_mobilenetv3.pth"
    torch.save(rvm_official, ckpt)
    out = tmp_path / "o.mov"
    r = CliRunner().invoke(app, ["video", str(clip), "-m", "rvm.mobilenetv3-pth", "--weights", str(ckpt), "-T", "rgba",
                                 "-o", str(out), "-b", "3"])
    assert r.exit_code == 0, r.stderr
    assert "downsample_ratio 1" in r.stderr
    assert r.stdout.strip() == str(out)
    stamps, frames, info = read_video(out)
    assert len(frames) == 6 and info["guessed_rate"] == Fraction(24000, 1001)
    assert audio_packets(out) == audio_packets(clip)


def test_cli_auto_picks_rvm_and_bgmv2(clip, tmp_path, isolated_home):
    """--model auto is the registry's choice (choose.pick_auto, temporal preferred): with nothing cached it says
    which model to fetch, RVM without a plate, BGMv2 with one; a usage error before any work."""
    from typer.testing import CliRunner

    from mattecli.cli.app import app

    r = CliRunner().invoke(app, ["video", str(clip), "-o", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and "models fetch rvm" in r.stderr, r.stderr
    plate = tmp_path / "plate.png"
    import cv2

    cv2.imwrite(str(plate), np.zeros((48, 64, 3), np.uint8))
    r = CliRunner().invoke(app, ["video", str(clip), "--bg", str(plate), "-o", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and "models fetch bgmv2" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_cli_auto_uses_cached_rvm(clip, rvm_official, tmp_path, isolated_home, monkeypatch):
    """With RVM's weights cached, --model auto runs it (and says so), downsample ratio chosen per clip."""
    from typer.testing import CliRunner

    from mattecli import choose
    from mattecli.cli.app import app

    ckpt = tmp_path / "rvm.pth"
    import torch

    torch.save(rvm_official, ckpt)
    real = mattecli.load_model
    monkeypatch.setattr(choose, "runnable_name", lambda e: "rvm" if e.name == "rvm" else None)
    monkeypatch.setattr(mattecli, "load_model", lambda name, **kw: real(name, **{**kw, "weights": str(ckpt)}))
    out = tmp_path / "o.mp4"
    r = CliRunner().invoke(app, ["video", str(clip), "-o", str(out), "--downsample-ratio", "auto-fullbody"])
    assert r.exit_code == 0, r.stderr
    assert "--model auto: using rvm" in r.stderr and "downsample_ratio 1" in r.stderr
    assert r.stdout.strip() == str(out) and out.is_file()


def test_bgmv2_plate_through_the_pipeline(clip, tmp_path):
    """--bg with the BGMv2 backend (synthetic weights): the plate reaches predict_batch for every frame."""
    import cv2

    from conftest import Oracle

    m = mattecli.load_model("bgmv2.mobilenetv2", weights=Oracle("bgmv2_mobilenetv2").torch_weights())
    plate = tmp_path / "plate.png"
    cv2.imwrite(str(plate), np.full((48, 64, 3), 40, np.uint8))
    out = tmp_path / "o.webm"
    res = run_video(VideoSource(str(clip)), m, VideoJob([plan_output("rgba", str(out))], plate=str(plate),
                                                          batch_size=4, progress=False))
    assert res.frames == 6 and out.is_file()
    _, frames, _ = read_video(out, libvpx=True)
    assert len(frames) == 6
