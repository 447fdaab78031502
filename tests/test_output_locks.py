"""One writer per output (mattecli.batch.locks): two real processes racing on one output.

Deterministic: the first writer is held by the test (it holds the lock itself, or the first run's model waits for a
gate file), never by sleeping and hoping.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from mattecli.batch.locks import OutputBusy, lock_path, output_lock

TESTS = os.path.dirname(os.path.abspath(__file__))


def _start(code: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True, env=env, **kw)


def _until(cond, what: str, timeout: float = 60.0) -> None:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Holder:
    """Another process holding the lock of ``path`` until the block ends."""

    def __init__(self, path):
        self.path = str(path)

    def __enter__(self):
        self.p = _start("import sys\nfrom mattecli.batch.locks import output_lock\n"
                        f"with output_lock({self.path!r}):\n    print('held', flush=True)\n    sys.stdin.read()\n")
        assert self.p.stdout.readline().strip() == "held", self.p.stderr.read()
        return self

    def __exit__(self, *exc):
        self.p.communicate("", timeout=60)


# ------------------------------------------------------------------------------------------------------ the lock
def test_lock_file_is_hidden_next_to_the_output_and_removed_on_release(tmp_path):
    out = tmp_path / "clip.mov"
    assert lock_path(out) == str(tmp_path / ".clip.mov.lock")
    assert lock_path(str(tmp_path / "seq") + "/") == str(tmp_path / ".seq.lock")       # a PNG-sequence folder
    long = lock_path(tmp_path / ("x" * 250 + ".png"))
    assert os.path.dirname(long) == str(tmp_path) and len(os.path.basename(long)) < 60
    with output_lock(out) as lp:
        assert os.path.exists(lp)
        with output_lock(out):            # re-entrant in one process
            pass
        assert os.path.exists(lp)
    assert os.listdir(tmp_path) == []     # output folders stay clean


def test_another_process_holding_it_fails_at_once_or_is_waited_for(tmp_path):
    out = tmp_path / "a.png"
    with Holder(out):
        t0 = time.perf_counter()
        with pytest.raises(OutputBusy, match=f"another mattecli run is writing {out}"):
            with output_lock(out):
                pass
        assert time.perf_counter() - t0 < 5                      # at once, no waiting
        from mattecli.imaging.io import atomic_write_bytes
        with pytest.raises(OutputBusy):
            atomic_write_bytes(out, b"x")
        assert os.listdir(tmp_path) == [".a.png.lock"]           # no output, no temp file left
    with output_lock(out, wait=True):                            # free again
        pass


def test_waiting_run_gets_the_lock_when_the_holder_finishes(tmp_path):
    out = tmp_path / "a.png"
    code = ("from mattecli.batch import locks\nfrom mattecli.imaging.io import atomic_write_bytes\n"
            f"locks.wait()\natomic_write_bytes({str(out)!r}, b'second')\nprint('done', flush=True)\n")
    with output_lock(out):
        p = _start(code)
        assert "waiting for another mattecli run writing" in p.stderr.readline()
        assert p.poll() is None and not out.exists()
        out.write_bytes(b"first")
    assert p.communicate(timeout=60)[0].strip() == "done" and p.returncode == 0
    assert out.read_bytes() == b"second" and sorted(os.listdir(tmp_path)) == ["a.png"]


def test_stale_lock_file_of_a_killed_run_is_harmless_and_never_an_input(tmp_path):
    from mattecli.batch import expand_inputs
    from mattecli.video.clips import expand_clips

    images, clips = tmp_path / "images", tmp_path / "clips"
    images.mkdir()
    clips.mkdir()
    (images / "a.png").write_bytes(b"x")
    (clips / "c.mp4").write_bytes(b"x")
    for out in (images / "b.png", clips / "d.mp4"):
        p = _start("import os, sys\nfrom mattecli.batch.locks import output_lock\n"
                   f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    os.kill(os.getpid(), 9)\n")
        assert p.stdout.readline().strip() == "held"
        p.wait(timeout=60)
        assert os.path.exists(lock_path(out))
    assert [it.path.name for it in expand_inputs([images])] == ["a.png"]
    assert [it.path.name for it in expand_clips([str(clips)])] == ["c.mp4"]
    with output_lock(images / "b.png"):                          # the kernel released it with the process
        pass


# ---------------------------------------------------------------------------------------------------- image verbs
def _alpha(tmp_path):
    import cv2

    a = np.zeros((24, 32), np.uint8)
    a[6:18, 8:24] = 255
    a[10:14, 4:8] = 128
    cv2.imwrite(str(tmp_path / "a.png"), a)
    return tmp_path / "a.png"


def _cli_code(args: list, wait: bool = False) -> str:
    return f"from mattecli.cli.app import main\nmain({args + ['--wait'] if wait else args!r})\n"


def test_image_verb_racing_on_one_output(tmp_path):
    alpha = _alpha(tmp_path)
    out = tmp_path / "out" / "t.png"
    out.parent.mkdir()
    args = ["trimap", "--from-alpha", str(alpha), "-o", str(out), "-q"]
    with output_lock(out):                                       # another run is writing out/t.png
        p = _start(_cli_code(args))
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 1, stderr
        assert f"another mattecli run is writing {out}" in stderr and "Traceback" not in stderr
        assert os.listdir(out.parent) == [".t.png.lock"]         # nothing written, no temp file left
        w = _start(_cli_code(args, wait=True))
        assert "waiting for another mattecli run writing" in w.stderr.readline()
        assert w.poll() is None and not out.exists()
    stdout, stderr = w.communicate(timeout=120)
    assert w.returncode == 0, stderr
    assert os.listdir(out.parent) == ["t.png"]


# ---------------------------------------------------------------------------------------------------------- video
VIDEO_RUN = """
import os, sys, time
sys.path.insert(0, {tests!r})
import video_helpers as vh
from mattecli import registry
registry.list_models()
class Gated(vh.FakeTemporal):
    def predict_batch(self, batch):
        while {gate!r} and not os.path.exists({gate!r}):
            time.sleep(0.02)
        return super().predict_batch(batch)
vh.Gated = Gated
registry.register(vh.ModelEntry(name="fake-gated", family="fake", summary="waits for a gate file",
                                adapter="video_helpers:Gated", options={{"gain": vh.Option(4.0, "float")}}))
from mattecli.cli.app import main
main(["video", {src!r}, "-m", "fake-gated", "-T", "alpha", "-o", {out!r}, "-b", "4", "-q"] + (["--wait"] if {wait!r} else []))
"""


def _video(src, out, gate: str = "", wait: bool = False) -> subprocess.Popen:
    return _start(VIDEO_RUN.format(tests=TESTS, src=str(src), out=str(out), gate=gate, wait=wait))


@pytest.fixture
def clips(tmp_path):
    from video_helpers import make_clip

    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    make_clip(a, n=24, w=64, h=48)
    make_clip(b, n=10, w=64, h=48)
    return a, b


def test_two_video_runs_racing_on_one_output(clips, tmp_path):
    """The second run fails at once naming the output; the first one finishes and its output is whole: all its
    frames, one video and one audio stream, nothing of the other clip."""
    from video_helpers import read_video

    a, b = clips
    out = tmp_path / "o" / "x.mp4"
    gate = tmp_path / "go"
    first = _video(a, out, gate=str(gate))
    _until(lambda: os.path.exists(lock_path(out)) or first.poll() is not None, "the first run to lock its output")
    assert first.poll() is None, first.communicate()[1]
    second = _video(b, out)
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == 1, err2
    errors = [ln for ln in err2.splitlines() if ln.startswith("mattecli: error:")]
    assert len(errors) == 1 and f"another mattecli run is writing {out}" in errors[0], err2
    assert first.poll() is None and not out.exists()
    gate.write_text("go")
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1
    import av

    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
    _, frames, _ = read_video(out)
    assert len(frames) == 24
    assert sorted(os.listdir(out.parent)) == ["x.mp4"]           # no lock file, no partial left behind


def test_video_run_waits_with_wait(clips, tmp_path):
    from video_helpers import read_video

    a, _ = clips
    out = tmp_path / "x.mov"
    with output_lock(out):
        p = _video(a, out, wait=True)
        line = p.stderr.readline()
        assert "waiting for another mattecli run writing" in line, line + p.stderr.read()
        assert p.poll() is None and not out.exists()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert len(read_video(out)[1]) == 24


def test_pipeline_refuses_a_locked_output_before_writing(clips, tmp_path):
    from video_helpers import FakeTemporal

    from mattecli.video.encode_plan import plan_output
    from mattecli.video.job import VideoJob
    from mattecli.video.pipeline import run_video
    from mattecli.video.reader import VideoSource

    a, _ = clips
    outs = [tmp_path / "o" / "a.mp4", tmp_path / "o" / "seq"]
    plans = [plan_output("alpha", str(outs[0])), plan_output("composite", str(outs[1]) + "/")]
    outs[0].parent.mkdir()
    with Holder(outs[1]):
        with pytest.raises(OutputBusy, match=f"another mattecli run is writing {outs[1]}"):
            run_video(VideoSource(str(a)), FakeTemporal(), VideoJob(plans, progress=False))
        assert os.listdir(tmp_path / "o") == [".seq.lock"]      # the other output's lock was released too
    res = run_video(VideoSource(str(a)), FakeTemporal(), VideoJob(plans, progress=False))
    assert res.frames == 24 and sorted(os.listdir(tmp_path / "o")) == ["a.mp4", "seq"]


def test_temp_litter_of_a_killed_run_is_removed_by_the_next_write(tmp_path):
    from mattecli.imaging.io import atomic_write_bytes

    out = tmp_path / "a.png"
    litter = tmp_path / ".a.png.12345-abcd.part"           # what kill -9 leaves between mkstemp and rename
    other = tmp_path / ".b.png.12345-abcd.part"            # another output's: not touched
    litter.write_bytes(b"half")
    other.write_bytes(b"half")
    atomic_write_bytes(out, b"whole")
    assert out.read_bytes() == b"whole" and not litter.exists() and other.exists()
