"""One long clip cut at keyframes into segments, matted apart and joined by stream copy: the frames, timestamps,
audio and rotation of a sequential run (image models exactly; temporal models within a level or two after their
warm-up frames), also spread over Ray workers."""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from video_helpers import FakeImage, FakeTemporal, audio_packets, read_video, synth_frame
from mattecli.batch import Item
from mattecli.video import segments as S
from mattecli.video.clip_task import ClipTask, clip_outputs
from mattecli.video.encode_plan import plan_output
from mattecli.video.job import VideoJob
from mattecli.video.join import join_segments
from mattecli.video.pipeline import run_video
from mattecli.video.reader import VideoSource
from mattecli.video.settings import VideoSettings

TESTS = str(Path(__file__).resolve().parent)


def make_gop_clip(path, n: int = 96, gop: int = 12, rotation: int = 0, w: int = 64, h: int = 48) -> None:
    """H.264 with B-frames and a keyframe every ``gop`` frames, 29.97 fps (time base 1/30000), AAC audio."""
    import av

    from mattecli.video.reader import rotate_coded

    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=Fraction(30000, 1001))
    vs.width, vs.height = (h, w) if rotation % 180 else (w, h)
    vs.pix_fmt = "yuv420p"
    vs.options = {"crf": "12", "preset": "medium", "g": str(gop), "keyint_min": str(gop),
                  "x264-params": "log-level=error"}
    tb = Fraction(1, 30000)
    vs.codec_context.time_base = tb
    vs.time_base = tb
    if rotation:
        vs.set_display_rotation(rotation)
    aus = out.add_stream("aac", rate=48000)
    aus.layout = "mono"
    for i in range(n):
        img = synth_frame(i, w, h)
        f = av.VideoFrame.from_ndarray(rotate_coded(img, rotation) if rotation else img, format="rgb24")
        f.pts, f.time_base = i * 1001, tb
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode(None):
        out.mux(p)
    ns = int(n / 29.97 * 48000)
    af = av.AudioFrame.from_ndarray((0.2 * np.sin(np.arange(ns) / 48000 * 2 * np.pi * 440)).astype(np.float32)[None],
                                    format="flt", layout="mono")
    af.sample_rate, af.pts = 48000, 0
    for p in aus.encode(af):
        out.mux(p)
    for p in aus.encode(None):
        out.mux(p)
    out.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    p = tmp_path_factory.mktemp("segclip") / "long.mp4"
    make_gop_clip(p)
    return p


def _sequential(src, model, plan):
    run_video(VideoSource(str(src)), model, VideoJob([plan], batch_size=4, progress=False))
    return read_video(plan.path)


def _segmented(src, model_cls, plan, parts: int, warm: int):
    idx = S.key_index(str(src))
    segs = S.plan_segments(idx, parts, warm=warm, min_frames=20)
    info = VideoSource(str(src)).info
    for seg in segs:
        S.run_segment(model_cls(), str(src), seg, info, [plan], batch_size=4)
    files = [S.segment_plans([plan], seg.index)[0].path for seg in segs]
    join_segments(plan, files, info, starts=[seg.start_pts for seg in segs])
    for f in files:
        os.remove(f)
    return segs, read_video(plan.path)


def test_cuts_fall_on_keyframes_and_keep_segments_long_enough(clip):
    idx = S.key_index(str(clip))
    assert len(idx.pts) == 96 and idx.keys == list(range(0, 96, 12))
    segs = S.plan_segments(idx, 3, warm=8, min_frames=20)
    assert [(s.first, s.stop, s.warm) for s in segs] == [(0, 36, 0), (36, 60, 8), (60, 96, 8)]
    assert all(s.first in idx.keys for s in segs) and segs[-1].stop_pts is None
    assert segs[1].seek_pts == idx.pts[24] and segs[1].warm_pts == idx.pts[28]   # decoding starts before the warm-up
    assert len(S.plan_segments(idx, 8, min_frames=40)) == 2                      # never shorter than min_frames
    assert len(S.plan_segments(idx, 1)) == 1


@pytest.mark.parametrize("otype,ext,lossless", [("alpha", "mkv", True), ("alpha", "mp4", True),
                                                ("composite", "mp4", False), ("rgba", "mov", False)])
def test_image_model_segments_join_into_the_sequential_output(clip, tmp_path, otype, ext, lossless):
    seq = _sequential(clip, FakeImage(), plan_output(otype, str(tmp_path / f"seq.{ext}"), lossless=lossless))
    segs, par = _segmented(clip, FakeImage, plan_output(otype, str(tmp_path / f"par.{ext}"), lossless=lossless), 3, 0)
    assert len(segs) == 3
    assert par[0] == seq[0]                                         # every timestamp, in the source's time base
    if lossless:
        assert all((a == b).all() for a, b in zip(seq[1], par[1]))  # every frame
    else:   # lossy: each segment starts its own GOP; the frames fed to the encoder were the same
        assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(seq[1], par[1])) <= 24
    assert audio_packets(tmp_path / f"seq.{ext}") == audio_packets(tmp_path / f"par.{ext}")
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]


def test_rotation_and_timestamps_survive_the_join(tmp_path):
    src = tmp_path / "rot.mp4"
    make_gop_clip(src, n=60, rotation=90)
    seq = _sequential(src, FakeImage(), plan_output("alpha", str(tmp_path / "seq.mkv"), lossless=True))
    _, par = _segmented(src, FakeImage, plan_output("alpha", str(tmp_path / "par.mkv"), lossless=True), 2, 0)
    assert par[2]["rotation"] == seq[2]["rotation"] == 90 and par[0] == seq[0]
    assert all((a == b).all() for a, b in zip(seq[1], par[1]))


def test_temporal_model_needs_its_warm_up(clip, tmp_path):
    seq = _sequential(clip, FakeTemporal(), plan_output("alpha", str(tmp_path / "seq.mkv"), lossless=True))
    worst = {}
    for warm in (0, 12):
        _, par = _segmented(clip, FakeTemporal, plan_output("alpha", str(tmp_path / f"w{warm}.mkv"), lossless=True),
                            3, warm)
        worst[warm] = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(seq[1], par[1]))
    assert worst[0] > 10 and worst[12] <= 1, worst      # a cold state at each cut; 12 frames: 2**-12 of a level


def _task(tmp_path, loader=FakeImage, **kw):
    s = VideoSettings(inputs=[], output_type="alpha", batch_size=4, quiet=True)
    return ClipTask(settings=s, name="fake", label="fake", loader=loader, weights_needed=False,
                    min_segment_frames=20, **kw)


def _item(src, out: Path):
    it = Item(path=Path(src), rel=Path(Path(src).name))
    it.info["plans"] = [plan_output("alpha", str(out), lossless=True)]
    return it


def test_clip_task_split_protocol_matches_a_whole_run(clip, tmp_path):
    task = _task(tmp_path)
    whole = task(_item(clip, tmp_path / "whole.mkv"))
    it = _item(clip, tmp_path / "split.mkv")
    assert clip_outputs(it) == [tmp_path / "split.mkv"]
    assert task.split(it, 1) is None                                  # one worker: whole
    parts = task.split(it, 3)
    assert len(parts) == 3
    results = [task.run_part(it, p) for p in parts]
    res = task.join(it, parts, results)
    assert res["outputs"] == [str(tmp_path / "split.mkv")] and res["frames"] == whole["frames"] == 96
    assert res["segments"] == 3
    assert read_video(tmp_path / "whole.mkv")[0] == read_video(tmp_path / "split.mkv")[0]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # segment files gone
    # what a failed or interrupted clip leaves is removed
    task.run_part(it, parts[1])
    assert [f for f in os.listdir(tmp_path) if ".seg0001" in f]
    task.discard(it, parts)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]
    # not split: PNG-sequence outputs, smoothing, a trimap per frame, too short
    seq_it = Item(path=clip, rel=Path("long.mp4"), info={"plans": [plan_output("alpha", str(tmp_path / "f") + "/")]})
    assert task.split(seq_it, 3) is None
    assert _task(tmp_path, segments=1).split(it, 3) is None
    assert _task(tmp_path).split(Item(path=clip, rel=Path("x"), partners={"trimap": "t/"}, info=it.info), 3) is None


def test_clip_task_from_a_video_command_gives_the_command_s_outputs_and_report(clip, tmp_path, monkeypatch):
    """The wiring of video/command.py: plans on the items, ClipTask.from_command, clip_outputs."""
    from video_helpers import register_fakes

    from mattecli.batch.runner import BatchRunner
    from mattecli.video.command import VideoCommand
    from mattecli.video.targets import output_complete

    register_fakes(monkeypatch)
    short = tmp_path / "b.mp4"
    make_gop_clip(short, n=20)
    rows = {}
    for way in ("command", "task"):
        # lossless: the two runs are compared frame for frame, and x264's lossy output is not promised to be
        # identical between two encodes of the same frames (one frame differed once in 3 suite runs under load)
        s = VideoSettings(inputs=[str(clip), str(short)], model="fake-temporal", output_type="alpha,composite",
                          output=str(tmp_path / way), quiet=True, report=str(tmp_path / f"{way}.json"),
                          lossless=True)
        cmd = VideoCommand(s)
        cmd.choose_model()
        if way == "command":
            assert cmd.run({"gain": 4.0}) == 0
        else:
            cmd.options = {"gain": 4.0}
            cmd._plan()
            for it in cmd.items:
                it.info["plans"] = cmd.plans[id(it)]
            task = ClipTask.from_command(cmd)
            assert task.temporal and not task.ratio_option and task.label == "fake-temporal"
            runner = BatchRunner(verb="video", model=cmd.label, report=s.report, quiet=True,
                                 is_complete=output_complete)
            assert runner.run(cmd.items, task, planned=clip_outputs) == 0
        rows[way] = [{k: v for k, v in r.items() if k not in ("seconds", "fps", "outputs")}
                     for r in json.loads((tmp_path / f"{way}.json").read_text())["items"]]
    assert rows["command"] == rows["task"]
    for name in ("long_alpha.mp4", "long_composite.mp4", "b_alpha.mp4"):
        a, b = read_video(tmp_path / "command" / name), read_video(tmp_path / "task" / name)
        assert a[0] == b[0] and all((x == y).all() for x, y in zip(a[1], b[1]))


# -- on a local Ray ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, old) if p)   # workers import video_helpers
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_long_clip_is_spread_over_the_ray_workers(ray_local, clip, tmp_path):
    from mattecli.batch.executors.ray_pool import RayExecutor
    from mattecli.batch.runner import BatchRunner
    from mattecli.video.targets import output_complete

    short = tmp_path / "short.mp4"
    make_gop_clip(short, n=30)
    task = _task(tmp_path, loader=FakeTemporal, temporal=True, warm=12)
    codes, rows = {}, {}
    for name, ex in (("local", None), ("ray", RayExecutor(workers=2))):
        items = [_item(clip, tmp_path / name / "long.mkv"), _item(short, tmp_path / name / "short.mkv")]
        rep = tmp_path / f"{name}.json"
        codes[name] = BatchRunner(verb="video", report=rep, quiet=True, is_complete=output_complete).run(
            items, task, planned=clip_outputs, executor=ex)
        rows[name] = json.loads(rep.read_text())["items"]
    assert codes == {"local": 0, "ray": 0}
    assert rows["ray"][0]["segments"] == 2 and "segments" not in rows["ray"][1]     # the short clip ran whole
    assert [r["frames"] for r in rows["ray"]] == [r["frames"] for r in rows["local"]] == [96, 30]
    for name in ("long.mkv", "short.mkv"):
        a, b = read_video(tmp_path / "local" / name), read_video(tmp_path / "ray" / name)
        assert a[0] == b[0] and max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a[1], b[1])) <= 1
    assert sorted(os.listdir(tmp_path / "ray")) == ["long.mkv", "short.mkv"]
