"""The fault corpus: every input, flag and event that breaks a run, fed to the real CLI (``python -m mattecli`` in a
subprocess, offline, ``NO_COLOR``, a private ``MATTECLI_HOME``).

Each case checks the exit code (0 all done, 1 an item failed, 2 usage error, 143 SIGTERM), that stderr holds one
``mattecli: error:`` line per error naming the file (and the fix where there is one) and no traceback, and that
nothing partial or corrupt is left: no ``*.part``/lock files, no half-written output under its final name, existing
outputs untouched. A case marked xfail states the right behaviour of a known bug (its reason is the diagnosis).

Inputs are tiny (32x32 images, 64x48 clips of a few frames) and the models are classical (closed-form) unless the
case is about weights, so the whole corpus runs in about a minute on one core.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fault_helpers import (LineReader, LockHolder, audio_only, cli_env, decode_times, error_lines, expect_error,
                           expect_ok, files_in, litter, malicious_pickle, png_declaring, random_bytes, read_any,
                           run_cli, scene, start_cli, trimap_frames, write_clip, write_png, zero_frame_clip)

CF = ["-m", "cf"]


@pytest.fixture
def work(tmp_path):
    """A working folder (the runs' cwd) holding img.png and its trimap tri.png, and an empty cache home."""
    img, tri = scene()
    write_png(tmp_path / "img.png", img)
    write_png(tmp_path / "tri.png", tri)
    home = tmp_path / "home"
    home.mkdir()

    class W:
        dir = tmp_path
        cache = home

        @staticmethod
        def run(*args, **kw):
            return run_cli(args, tmp_path, home, **kw)

    return W


# ------------------------------------------------------------------ accepted inputs (one batch run for all of them)
ACCEPTED = ("png16", "trimap_palette", "trimap_rgba_opaque", "trimap_16bit", "trimap_grey_alpha", "cmyk_jpeg")


@pytest.fixture(scope="module")
def accepted(tmp_path_factory):
    """One `matte FOLDER --trimap FOLDER` run over the input variants that must work, plus the plain 8-bit input
    ``base`` whose alpha is the yardstick (also for the FIFO and stdin cases)."""
    from PIL import Image

    d = tmp_path_factory.mktemp("accepted")
    home = d / "home"
    img, tri = scene()
    opaque = np.full(tri.shape, 255, np.uint8)
    write_png(d / "in" / "base.png", img)
    write_png(d / "tri" / "base.png", tri)
    write_png(d / "in" / "png16.png", img.astype(np.uint16) * 257)
    write_png(d / "tri" / "png16.png", tri)
    for name in ("trimap_palette", "trimap_rgba_opaque", "trimap_16bit", "trimap_grey_alpha"):
        write_png(d / "in" / f"{name}.png", img)
    Image.fromarray(tri).convert("P").save(d / "tri" / "trimap_palette.png")
    write_png(d / "tri" / "trimap_rgba_opaque.png", np.dstack([tri, tri, tri, opaque]))
    write_png(d / "tri" / "trimap_16bit.png", tri.astype(np.uint16) * 257)
    Image.fromarray(np.dstack([tri, opaque]), "LA").save(d / "tri" / "trimap_grey_alpha.png")
    Image.fromarray(img).convert("CMYK").save(d / "in" / "cmyk_jpeg.jpg", quality=98)
    write_png(d / "tri" / "cmyk_jpeg.png", tri)
    p = run_cli(["matte", "in", "--trimap", "tri", *CF, "-o", "out", "--json"], d, home)
    return d, p


def test_accepted_batch_exits_0_with_only_complete_outputs(accepted):
    """The accepted variants in one folder: exit 0, one alpha each, no error, nothing else written."""
    d, p = accepted
    expect_ok(p)
    doc = json.loads(p.stdout)
    assert [i["status"] for i in doc["items"]] == ["ok"] * (len(ACCEPTED) + 1)
    assert files_in(d / "out") == sorted(f"{n}_alpha.png" for n in ("base",) + ACCEPTED)
    assert litter(d / "out") == [] and litter(d / "in") == []


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_variant_gives_the_plain_inputs_alpha(accepted, name):
    """16-bit PNG input, palette / opaque RGBA / 16-bit / grey+alpha trimaps, CMYK JPEG: the same matte as the
    plain 8-bit files (exactly, or within the variant's own rounding)."""
    d, p = accepted
    assert p.returncode == 0, p.stderr
    base = read_any(d / "out" / "base_alpha.png").astype(int)
    got = read_any(d / "out" / f"{name}_alpha.png").astype(int)
    assert got.shape == base.shape and got.ndim == 2
    tol = {"png16": 1, "cmyk_jpeg": 40}.get(name, 0)
    assert np.abs(got - base).max() <= tol
    if name == "cmyk_jpeg":
        assert np.abs(got - base).mean() < 4


# --------------------------------------------------------------------------------------------- unreadable images
def _bad_image(work, kind: str) -> Path:
    good = (work.dir / "img.png").read_bytes()
    if kind == "empty":
        (work.dir / "in.png").write_bytes(b"")
    elif kind == "truncated_png":
        (work.dir / "in.png").write_bytes(good[: len(good) // 2])
    elif kind == "truncated_jpeg":
        import cv2

        ok, jpg = cv2.imencode(".jpg", read_any(work.dir / "img.png"))
        (work.dir / "in.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
        return Path("in.jpg")
    elif kind == "text_named_png":
        (work.dir / "in.png").write_text("name,alpha\nnot,an image\n")
    return Path("in.png")


@pytest.mark.parametrize("kind,needle", [("empty", "empty file (0 bytes)"),
                                         ("truncated_png", "truncated"),
                                         ("truncated_jpeg", "truncated"),
                                         ("text_named_png", "not an image")])
def test_unreadable_image_fails_its_item_naming_it(work, kind, needle):
    """0-byte, truncated PNG / JPEG, a text file named .png -> exit 1, one line naming the file, no output."""
    bad = _bad_image(work, kind)
    before = (work.dir / bad).read_bytes()
    p = work.run("matte", bad, "--trimap", "tri.png", *CF, "-o", "out")
    expect_error(p, 1, str(bad), needle)
    assert p.stdout == b""
    assert files_in(work.dir / "out") == [] and litter(work.dir) == []
    assert (work.dir / bad).read_bytes() == before


@pytest.mark.parametrize("w,h,needle", [(100000, 100000, "too large"),     # over Pillow's own limit
                                        (40000, 40000, "pixels")])          # over mattecli's 2**30 pixels
def test_decompression_bomb_header_is_refused_before_decoding(work, w, h, needle):
    """A 200-byte PNG declaring a huge size: exit 1 naming it, 'downscale the file first', nothing decoded."""
    png_declaring(work.dir / "bomb.png", w, h)
    t0 = time.monotonic()
    p = work.run("matte", "bomb.png", "--trimap", "tri.png", *CF, "-o", "out")
    expect_error(p, 1, "bomb.png", needle, "downscale")
    assert time.monotonic() - t0 < 60
    assert files_in(work.dir / "out") == []


def test_image_that_does_not_fit_in_memory_is_refused_from_its_header(work):
    """The memory guard: a 20000x20000 PNG header with 64 MB available -> exit 1, the estimate and the way out."""
    png_declaring(work.dir / "big.png", 20000, 20000)
    p = run_cli(["matte", "big.png", "--trimap", "tri.png", *CF, "-o", "out"], work.dir, work.cache,
                env=cli_env(work.cache, MATTECLI_MEMORY="64M"))
    expect_error(p, 1, "big.png", "20000x20000", "available", "downscale")
    assert files_in(work.dir / "out") == []


# ----------------------------------------------------------------------------------------------------- trimaps
def _bad_trimap(work, kind: str) -> None:
    from PIL import Image

    _, tri = scene()
    if kind == "palette_transparent":
        Image.fromarray(tri).convert("P").save(work.dir / "bad.png", transparency=0)
    elif kind == "rgba_transparent":
        write_png(work.dir / "bad.png", np.dstack([tri, tri, tri, np.where(tri == 0, 0, 255).astype(np.uint8)]))
    elif kind == "other_size":
        write_png(work.dir / "bad.png", tri[:-4])
    elif kind == "no_unknown":
        write_png(work.dir / "bad.png", np.where(tri >= 128, 255, 0).astype(np.uint8))
    elif kind == "colour":
        write_png(work.dir / "bad.png", np.dstack([tri, tri // 2, tri]))


@pytest.mark.parametrize("kind,needles", [
    ("palette_transparent", ("transparent", "opaque grey")),
    ("rgba_transparent", ("transparent", "opaque grey")),
    ("other_size", ("32x28", "32x32", "same size")),
    ("no_unknown", ("no unknown", "128")),
    ("colour", ("colour", "grey")),
])
def test_refused_trimap_fails_its_item_naming_it_and_the_fix(work, kind, needles):
    _bad_trimap(work, kind)
    p = work.run("matte", "img.png", "--trimap", "bad.png", *CF, "-o", "out")
    expect_error(p, 1, "bad.png", *needles)
    assert files_in(work.dir / "out") == [] and litter(work.dir) == []


def test_missing_trimap_in_a_folder_batch_fails_that_item_only(work):
    """Three images, trimaps for two: those two are matted, the third fails naming --trimap, exit 1, report."""
    img, tri = scene()
    for n in ("a", "b", "c"):
        write_png(work.dir / "imgs" / f"{n}.png", img)
    for n in ("a", "c"):
        write_png(work.dir / "tris" / f"{n}_trimap.png", tri)
    p = work.run("matte", "imgs", "--trimap", "tris", *CF, "-o", "out", "--report", "run.json")
    expect_error(p, 1, "b.png", "--trimap")
    assert files_in(work.dir / "out") == ["a_alpha.png", "c_alpha.png"] and litter(work.dir) == []
    rep = json.loads((work.dir / "run.json").read_text())
    assert [(Path(i["input"]).name, i["status"]) for i in rep["items"]] == [("a.png", "ok"), ("b.png", "failed"),
                                                                            ("c.png", "ok")]
    assert p.stdout.decode().split() == [str(Path("out") / "a_alpha.png"), str(Path("out") / "c_alpha.png")]


# ------------------------------------------------------------------------------------------------------- outputs
def test_unwritable_output_folder_fails_naming_it_and_leaves_the_blocker(work):
    """-o under a regular file: a usage error (exit 2) before the model runs, one line naming the folder and the
    way out, the file untouched, nothing written."""
    (work.dir / "blocker").write_text("a file, not a folder")
    p = work.run("matte", "img.png", "--trimap", "tri.png", *CF, "-o", "blocker/out")
    expect_error(p, 2, "blocker", "choose another -o")
    assert (work.dir / "blocker").read_text() == "a file, not a folder"
    assert litter(work.dir) == []


def test_unwritable_output_folder_is_found_before_the_model_runs(work):
    (work.dir / "blocker").write_text("x")
    p = work.run("matte", "img.png", "--trimap", "tri.png", "-m", "cf", "-o", "blocker/out", "-v")
    line = expect_error(p, 2, "blocker")
    assert "-o" in line and "input(s) with" not in p.stderr      # stopped before the model was loaded


def test_file_size_limit_mid_write_leaves_no_temp_file(work):
    """A write that fails (RLIMIT_FSIZE: EFBIG, like a full disk): exit 1 naming the output, no .part left."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    p = run_cli(["matte", "img.png", "--trimap", "tri.png", *CF, "-o", "out"], work.dir, work.cache,
                preexec_fn=limit)
    expect_error(p, 1, str(Path("out") / "img_alpha.png"), "File too large")
    assert files_in(work.dir / "out") == []


@pytest.mark.parametrize("how", [["-o", "img.png"], ["-o", ".", "--template", "{stem}.{ext}"]])
def test_output_equal_to_input_is_refused_up_front(work, how):
    before = (work.dir / "img.png").read_bytes()
    p = work.run("matte", "img.png", "--trimap", "tri.png", *CF, *how)
    expect_error(p, 2, "img.png", "overwrite the input")
    assert (work.dir / "img.png").read_bytes() == before
    assert sorted(os.listdir(work.dir)) == ["home", "img.png", "tri.png"]


def test_output_with_a_trailing_slash_is_a_folder(work):
    p = work.run("matte", "img.png", "--trimap", "tri.png", *CF, "-o", "res.png/")
    expect_ok(p)
    assert (work.dir / "res.png").is_dir() and files_in(work.dir / "res.png") == ["img_alpha.png"]


def test_existing_outputs_are_skipped_incomplete_ones_refused_and_overwrite_replaces(work):
    """A complete existing output is skipped and left byte for byte; a truncated one fails its item naming it and
    --overwrite; with --overwrite both are replaced by the real alphas."""
    img, tri = scene()
    for n in ("a", "b"):
        write_png(work.dir / "imgs" / f"{n}.png", img)
    out = work.dir / "out"
    write_png(out / "a_alpha.png", np.zeros((32, 32), np.uint8))
    write_png(out / "b_alpha.png", np.zeros((32, 32), np.uint8))
    (out / "b_alpha.png").write_bytes((out / "b_alpha.png").read_bytes()[:30])
    before = {n: (out / n).read_bytes() for n in ("a_alpha.png", "b_alpha.png")}
    p = work.run("matte", "imgs", "--trimap", "tri.png", *CF, "-o", "out", "--json")
    expect_error(p, 1, "b_alpha.png", "--overwrite")
    doc = json.loads(p.stdout)
    assert [i["status"] for i in doc["items"]] == ["skipped", "failed"]
    assert {n: (out / n).read_bytes() for n in before} == before
    p = work.run("matte", "imgs", "--trimap", "tri.png", *CF, "-o", "out", "--overwrite")
    expect_ok(p)
    a, b = read_any(out / "a_alpha.png"), read_any(out / "b_alpha.png")
    assert a.shape == (32, 32) and a.max() == 255 and np.array_equal(a, b)
    assert files_in(out) == ["a_alpha.png", "b_alpha.png"] and litter(out) == []


def test_killed_runs_temp_file_and_lock_are_removed_by_the_next_run(work):
    """A run killed (SIGKILL) between writing its temp file and renaming it leaves `.NAME.<pid>-<rand>.part` and a
    lock file; the next run writes the output and removes both."""
    import subprocess
    import sys

    out = work.dir / "out"
    out.mkdir()
    code = ("import os\nfrom mattecli.imaging.io import atomic_path\n"
            f"with atomic_path({str(out / 'img_alpha.png')!r}) as tmp:\n"
            "    open(tmp, 'wb').write(b'\\x89PNG half')\n    os.kill(os.getpid(), 9)\n")
    k = subprocess.run([sys.executable, "-c", code], env=cli_env(work.cache), capture_output=True, timeout=60)
    assert k.returncode == -9
    assert [n for n in os.listdir(out) if n.endswith(".part")], os.listdir(out)
    p = work.run("matte", "img.png", "--trimap", "tri.png", *CF, "-o", "out")
    expect_ok(p)
    assert os.listdir(out) == ["img_alpha.png"]
    assert read_any(out / "img_alpha.png").shape == (32, 32)


def test_second_run_on_a_locked_output_fails_at_once_naming_it(work):
    out = work.dir / "out" / "img_alpha.png"
    out.parent.mkdir()
    with LockHolder(out, cli_env(work.cache)):
        p = work.run("matte", "img.png", "--trimap", "tri.png", *CF, "-o", "out", timeout=90)
        expect_error(p, 1, "another mattecli run is writing", str(Path("out") / "img_alpha.png"))
        assert os.listdir(out.parent) == [".img_alpha.png.lock"]        # the holder's own lock, nothing else
    assert not out.exists()


def test_with_wait_the_second_run_waits_for_the_lock(work):
    out = work.dir / "out" / "img_alpha.png"
    out.parent.mkdir()
    with LockHolder(out, cli_env(work.cache)):
        proc = start_cli(["matte", "img.png", "--trimap", "tri.png", *CF, "-o", "out", "--wait"], work.dir,
                         work.cache)
        err = LineReader(proc.stderr)
        assert err.wait_for("waiting for another mattecli run", timeout=90), err.rest(5)
        time.sleep(0.3)
        assert proc.poll() is None and not out.exists()
    stdout, _ = proc.communicate(timeout=90)
    stderr = err.rest()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and not error_lines(stderr)
    assert stdout.split() == [str(Path("out") / "img_alpha.png")]
    assert os.listdir(out.parent) == ["img_alpha.png"]


# ------------------------------------------------------------------------------------------- pipes and signals
def test_fifo_input_is_read_like_a_file(accepted, work):
    d, _ = accepted
    fifo = work.dir / "pipe.png"
    os.mkfifo(fifo)
    data = (work.dir / "img.png").read_bytes()
    writer = threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True)
    writer.start()
    try:
        p = work.run("matte", "pipe.png", "--trimap", "tri.png", *CF, "-o", "out")
    finally:
        if writer.is_alive():                 # never left blocked: open the reading end once
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    expect_ok(p)
    assert np.array_equal(read_any(work.dir / "out" / "pipe_alpha.png"), read_any(d / "out" / "base_alpha.png"))


def test_stdin_to_stdout_gives_one_png_on_stdout_and_the_rest_on_stderr(accepted, work):
    import cv2

    d, _ = accepted
    p = work.run("matte", "-", "--trimap", "tri.png", *CF, "-o", "-", stdin=(work.dir / "img.png").read_bytes())
    expect_ok(p)
    out = p.stdout
    assert out.startswith(b"\x89PNG\r\n\x1a\n") and out.endswith(b"IEND\xaeB`\x82") and out.count(b"IEND") == 1
    got = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(got, read_any(d / "out" / "base_alpha.png"))
    assert all(ln.startswith("mattecli: ") for ln in p.stderr.splitlines())
    assert sorted(os.listdir(work.dir)) == ["home", "img.png", "tri.png"]


def test_empty_stdin_names_standard_input(work):
    p = work.run("matte", "-", "--trimap", "tri.png", *CF, "-o", "-", stdin=b"")
    expect_error(p, 1, "standard input")
    assert p.stdout == b""


def test_sigterm_mid_batch_exits_143_with_report_and_only_complete_files(work):
    """a.png is done, the run then waits on b.png (a FIFO nobody writes): SIGTERM -> exit 143, the report says
    interrupted, a done, c not run; only a's complete output exists."""
    img, _ = scene()
    write_png(work.dir / "a.png", img)
    write_png(work.dir / "c.png", img)
    os.mkfifo(work.dir / "b.png")
    proc = start_cli(["matte", "a.png", "b.png", "c.png", "--trimap", "tri.png", *CF, "-o", "out",
                      "--report", "run.json"], work.dir, work.cache)
    out = LineReader(proc.stdout)
    try:
        assert out.wait_for("a_alpha.png", timeout=90), proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.5)                      # into b.png's open(), which blocks
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "interrupted (SIGTERM)" in stderr
    rep = json.loads((work.dir / "run.json").read_text())
    assert rep["summary"]["interrupted"] is True and rep["summary"]["signal"] == "SIGTERM"
    status = {Path(i["input"]).name: i["status"] for i in rep["items"]}
    assert status["a.png"] == "ok" and status["c.png"] == "not-run" and status["b.png"] in ("failed", "not-run")
    assert files_in(work.dir / "out") == ["a_alpha.png"] and litter(work.dir) == []
    assert read_any(work.dir / "out" / "a_alpha.png").shape == (32, 32)
    assert stat.S_ISFIFO(os.stat(work.dir / "b.png").st_mode)


# ---------------------------------------------------------------------------------------------------- bad flags
@pytest.mark.parametrize("flag,needles", [
    (["--option", "epsilon=abc"], ("epsilon=abc", "not a number", "valid")),
    (["--option", "nonsense=1"], ("unknown option nonsense", "valid options", "epsilon")),
    (["--device", "nonsense"], ("--device 'nonsense'", "cpu", "cuda")),
    (["--bits", "12"], ("--bits", "8 or 16")),
])
def test_bad_flag_value_is_a_usage_error_with_the_valid_values(work, flag, needles):
    p = work.run("matte", "img.png", "--trimap", "tri.png", *CF, "-o", "out", *flag)
    expect_error(p, 2, *needles)
    assert not (work.dir / "out").exists()


def test_unknown_flag_is_a_usage_error_without_traceback(work):
    p = work.run("matte", "img.png", "--trimap", "tri.png", *CF, "-o", "out", "--epsilon", "1e-6")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "No such option: --epsilon" in p.stderr and p.stdout == b""
    assert not (work.dir / "out").exists()


# ------------------------------------------------------------------------------------------------------ weights
@pytest.mark.parametrize("model", ["dim", "dim.foamliu"])
def test_malicious_pickle_weights_are_refused_and_never_run(work, model):
    """A pickle whose loading would call os.mkdir(marker): refused naming the file and the global; no marker."""
    marker = work.dir / "PWNED"
    malicious_pickle(work.dir / "evil.pth", marker)
    p = work.run("matte", "img.png", "--trimap", "tri.png", "-m", model, "--weights", "evil.pth", "-o", "out")
    expect_error(p, 1, "evil.pth", "mkdir")
    assert not marker.exists()
    assert files_in(work.dir / "out") == []


def test_random_bytes_as_weights_are_named_as_such(work):
    random_bytes(work.dir / "w.pth")
    p = work.run("matte", "img.png", "--trimap", "tri.png", "-m", "dim", "--weights", "w.pth", "-o", "out")
    expect_error(p, 1, "w.pth", "unrecognised bytes", "models info")
    assert files_in(work.dir / "out") == []


def test_onnx_file_as_dim_weights_is_named_as_onnx(work):
    from conftest import need_shared

    onnx = need_shared("weights", "rvm_mobilenetv3_fp32.onnx")
    p = work.run("matte", "img.png", "--trimap", "tri.png", "-m", "dim", "--weights", onnx, "-o", "out")
    expect_error(p, 1, onnx.name, "an ONNX model", "not a PyTorch checkpoint")
    assert files_in(work.dir / "out") == []


def test_another_models_state_dict_is_refused_naming_the_layout(work):
    import torch

    torch.save({"state_dict": {"module.backbone.conv1.weight": torch.zeros(8, 3, 3, 3),
                               "module.decoder.head.bias": torch.zeros(1)}}, work.dir / "other.pth")
    p = work.run("matte", "img.png", "--trimap", "tri.png", "-m", "dim", "--weights", "other.pth", "-o", "out")
    expect_error(p, 1, "other.pth", "not the official layout")
    assert files_in(work.dir / "out") == []


def test_offline_without_weights_names_the_fetch_and_import_commands(work):
    p = work.run("matte", "img.png", "--trimap", "tri.png", "-m", "dim", "--offline", "-o", "out")
    expect_error(p, 1, "mattecli models fetch dim", "mattecli models import dim", "--offline")
    assert files_in(work.dir / "out") == [] and files_in(work.cache) == []


@pytest.fixture(scope="module")
def rvm_home(tmp_path_factory):
    """A cache home with RVM's real ONNX imported (official file + our converted file)."""
    from conftest import need_shared

    onnx = need_shared("weights", "rvm_mobilenetv3_fp32.onnx")
    d = tmp_path_factory.mktemp("rvm")
    home = d / "home"
    p = run_cli(["models", "import", "rvm", onnx], d, home, timeout=300)
    assert p.returncode == 0, p.stderr
    pt = [f for f in home.rglob("*.mattecli.pt")]
    assert len(pt) == 1, files_in(home)
    return home, pt[0]


def _damaged_copy(rvm_home, tmp_path) -> tuple[Path, Path]:
    home, pt = rvm_home
    mine = tmp_path / "rvmhome"
    shutil.copytree(home, mine)
    conv = mine / pt.relative_to(home)
    raw = bytearray(conv.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    conv.write_bytes(bytes(raw))
    return mine, conv


def test_damaged_converted_weights_fail_verify_and_are_never_loaded(rvm_home, work):
    home, conv = _damaged_copy(rvm_home, work.dir)
    v = run_cli(["models", "verify"], work.dir, home)
    assert v.returncode == 1 and "Traceback" not in v.stderr
    text = " ".join((v.stdout.decode() + v.stderr).split())      # a narrow terminal wraps the table's cells
    assert "mismatch" in text and conv.name in text and "mattecli models fetch rvm --force" in text
    p = run_cli(["matte", "img.png", "-m", "rvm", "-o", "out"], work.dir, home)
    expect_error(p, 1, conv.name, "does not match", "mattecli models fetch rvm --force")
    assert files_in(work.dir / "out") == []


def test_the_fix_verify_names_works_offline_when_the_official_file_is_intact(rvm_home, work):
    home, conv = _damaged_copy(rvm_home, work.dir)
    p = run_cli(["models", "fetch", "rvm", "--force"], work.dir, home, timeout=300)
    expect_ok(p)
    v = run_cli(["models", "verify"], work.dir, home)
    assert v.returncode == 0, v.stdout.decode() + v.stderr


def test_other_familys_converted_file_names_the_model_it_is_for(rvm_home, work):
    _, pt = rvm_home
    p = work.run("matte", "img.png", "--trimap", "tri.png", "-m", "dim", "--weights", pt, "-o", "out")
    expect_error(p, 1, pt.name, "rvm", "--model rvm")


def test_import_of_an_onnx_as_dim_is_refused_without_a_false_note(work):
    from conftest import need_shared

    onnx = need_shared("weights", "rvm_mobilenetv3_fp32.onnx")
    p = work.run("models", "import", "dim", onnx)
    expect_error(p, 1, onnx.name, "an ONNX model")
    assert files_in(work.cache / "weights") == []
    assert "recorded" not in p.stderr


# --------------------------------------------------------------------------------------------------------- video
@pytest.fixture
def clipdir(work):
    trimap_frames(work.dir / "tri30", 30)
    return work


def test_video_auto_model_without_cached_weights_says_what_to_fetch(clipdir):
    write_clip(clipdir.dir / "clip.mp4", n=3)
    p = clipdir.run("video", "clip.mp4", "-T", "alpha", "-o", "out.mkv")
    expect_error(p, 2, "--model auto", "mattecli models fetch rvm", "--trimap")
    assert not (clipdir.dir / "out.mkv").exists() and files_in(clipdir.cache) == []


def test_audio_only_file_given_to_video_fails_naming_it(clipdir):
    audio_only(clipdir.dir / "song.m4a")
    p = clipdir.run("video", "song.m4a", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mkv")
    expect_error(p, 1, "song.m4a", "no video stream", "audio")
    assert not (clipdir.dir / "out.mkv").exists() and litter(clipdir.dir) == []


def test_zero_frame_video_fails_before_any_output(clipdir):
    zero_frame_clip(clipdir.dir / "empty.mkv")
    p = clipdir.run("video", "empty.mkv", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mkv")
    expect_error(p, 1, "empty.mkv", "no decodable video frames")
    assert not (clipdir.dir / "out.mkv").exists() and litter(clipdir.dir) == []


def test_variable_frame_rate_clip_keeps_its_timestamps(clipdir):
    pts = [0, 3000, 9000, 10000, 16000, 30000]                    # 1/90000 s: 0, 33, 100, 111, 178, 333 ms
    write_clip(clipdir.dir / "vfr.mp4", pts=pts, time_base="1/90000")
    p = clipdir.run("video", "vfr.mp4", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mkv")
    expect_ok(p)
    times, _ = decode_times(clipdir.dir / "out.mkv")
    assert np.allclose(times, [t / 90000 for t in pts], atol=0.0015), times
    assert litter(clipdir.dir) == []


def test_rotated_clip_is_matted_upright_and_keeps_its_rotation(clipdir):
    """Stored 48x64 with a 90-degree display matrix: the upright 64x48 trimaps fit, the rotation is written back."""
    write_clip(clipdir.dir / "rot.mp4", n=6, rotation=90)
    _, rot_in = decode_times(clipdir.dir / "rot.mp4")
    p = clipdir.run("video", "rot.mp4", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mp4")
    expect_ok(p)
    times, rot_out = decode_times(clipdir.dir / "out.mp4")
    assert len(times) == 6 and rot_out == rot_in != 0
    assert litter(clipdir.dir) == []


def _truncated(clipdir) -> Path:
    src = write_clip(clipdir.dir / "full.mp4", n=30, options={"movflags": "faststart"})
    data = src.read_bytes()
    (clipdir.dir / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    src.unlink()
    return clipdir.dir / "cut.mp4"


def test_truncated_mp4_fails_naming_the_frame(clipdir):
    """Exit 1 naming the frame where it stops and --allow-truncated; no file under the final name (the documented
    playable NAME.partial.mkv holds the frames done)."""
    _truncated(clipdir)
    p = clipdir.run("video", "cut.mp4", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mkv")
    line = expect_error(p, 1, "cut.mp4", "ends early at frame", "--allow-truncated")
    assert not (clipdir.dir / "out.mkv").exists()
    assert [n for n in os.listdir(clipdir.dir) if n.startswith("out")] == ["out.partial.mkv"]
    assert not [n for n in os.listdir(clipdir.dir) if n.endswith(".part") or n.endswith(".lock")]
    done = int(line.split("ends early at frame ")[1].split()[0])
    assert 0 < done < 30 and len(decode_times(clipdir.dir / "out.partial.mkv")[0]) == done


def test_truncated_mp4_with_allow_truncated_keeps_going_with_a_warning(clipdir):
    _truncated(clipdir)
    p = clipdir.run("video", "cut.mp4", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mkv",
                    "--allow-truncated")
    expect_ok(p)
    warn = [ln for ln in p.stderr.splitlines() if ln.startswith("mattecli: warning:") and "cut.mp4" in ln]
    assert len(warn) == 1 and "ends early at frame" in warn[0], p.stderr
    done = int(warn[0].split("ends early at frame ")[1].split()[0])
    assert len(decode_times(clipdir.dir / "out.mkv")[0]) == done
    assert litter(clipdir.dir) == []


def test_successful_rerun_removes_the_stale_partial_output(clipdir):
    _truncated(clipdir)
    p = clipdir.run("video", "cut.mp4", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mkv")
    assert p.returncode == 1 and (clipdir.dir / "out.partial.mkv").exists()
    p = clipdir.run("video", "cut.mp4", *CF, "--trimap", "tri30", "-T", "alpha", "-o", "out.mkv",
                    "--allow-truncated")
    expect_ok(p)
    assert [n for n in os.listdir(clipdir.dir) if n.startswith("out")] == ["out.mkv"]


# ---------------------------------------------------------------------------------------------------------- eval
@pytest.fixture
def evaldir(work):
    gt = np.zeros((24, 32), np.uint8)
    gt[6:18, 8:24] = 255
    gt[6:18, 8:12] = 128
    pred = np.clip(gt.astype(int) + np.random.default_rng(0).integers(-20, 20, gt.shape), 0, 255).astype(np.uint8)
    tri = np.zeros_like(gt)
    tri[4:20, 6:26] = 102                                   # pymatting's lemur convention: unknown = 102
    tri[8:16, 14:22] = 255
    write_png(work.dir / "pred" / "x.png", pred)
    write_png(work.dir / "gt" / "x.png", gt)
    write_png(work.dir / "tri" / "x.png", tri)
    return work


def test_eval_trimap_with_unknown_102_is_an_error_naming_102_and_the_fix(evaldir):
    p = evaldir.run("eval", "--pred", "pred", "--gt", "gt", "--trimap", "tri", "-q")
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stdout == b"", p.stderr
    errors = error_lines(p.stderr)       # the item's line, then eval's count of the items it could not score
    assert len(errors) == 2 and errors[1] == "mattecli: error: 1 of 1 item(s) could not be scored", p.stderr
    for needle in (str(Path("tri") / "x.png"), "unknown is 102", "--unknown-values 102",
                   "mattecli trimap --from-alpha"):
        assert needle in errors[0], errors[0]
    assert all(ln.startswith("mattecli") for ln in p.stderr.splitlines()), p.stderr


def test_eval_unknown_values_102_scores_it_and_the_suggested_conversion_agrees(evaldir):
    p = evaldir.run("eval", "--pred", "pred", "--gt", "gt", "--trimap", "tri", "--unknown-values", "102", "--json",
                    "-q")
    expect_ok(p)
    doc = json.loads(p.stdout)
    assert doc["count"] == 1 and doc["errors"] == [] and "102" in doc["region"]
    # the conversion the error line suggests gives 128-trimaps with the same scores
    c = evaldir.run("trimap", "--from-alpha", "tri", "--lo", "0.1", "--hi", "0.9", "-o", "fixed", "-q")
    expect_ok(c)
    assert sorted(np.unique(read_any(evaldir.dir / "fixed" / "x_trimap.png")).tolist()) == [0, 128, 255]
    q = evaldir.run("eval", "--pred", "pred", "--gt", "gt", "--trimap", "fixed", "--json", "-q")
    expect_ok(q)
    again = json.loads(q.stdout)
    for k in ("sad", "mse", "grad", "conn"):
        assert again["images"][0][k] == pytest.approx(doc["images"][0][k], rel=1e-6)
