"""One flag vocabulary across the tool: every command's options (all verbs and the `models` subcommands) walked for
clashes, and the card commands run as typed, in real processes (default placement beside the input, skip on re-run,
--overwrite, stdin/stdout pipes)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from foundation_helpers import runner, small_example, write_example
from mattecli.cli import flags
from mattecli.cli.app import app
from mattecli.imaging.io import read_image

WRITERS = ("matte", "trimap", "composite", "video")      # the verbs that write image / video outputs


def _commands():
    """[(command path, click command)] for every command of the app, sub-commands included."""
    import typer.main

    found = []

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk(sub, path + (name,))
        else:
            found.append((" ".join(path), cmd))

    walk(typer.main.get_command(app), ())
    return found


def _options():
    """[(command, long name, short names, click option)] for every option but --help."""
    rows = []
    for name, cmd in _commands():
        for p in cmd.params:
            if getattr(p, "param_type_name", "") != "option" or "--help" in p.opts:
                continue
            names = list(p.opts) + list(p.secondary_opts)
            longs = [n for n in names if n.startswith("--")]
            shorts = [n for n in names if re.fullmatch(r"-[A-Za-z0-9]", n)]
            rows.append((name, longs[0] if longs else names[0], shorts, p))
    return rows


def _type(p) -> str:
    """The option's value type as the help would name it (str, int, bool, list[str]...)."""
    bare = getattr(p, "bare_type", None)
    if callable(bare):
        return str(bare())
    return getattr(getattr(p, "type", None), "name", "?")


def first_sentence(text: str | None) -> str:
    return re.split(r"(?<=\.)\s", (text or "").strip(), maxsplit=1)[0]


def test_every_verb_and_models_subcommand_is_walked():
    names = {n for n, _ in _commands()}
    assert {"matte", "trimap", "composite", "video", "eval"} <= names
    assert any(n.startswith("models ") for n in names), names


def test_one_long_name_per_short_flag():
    seen = defaultdict(set)
    for cmd, long, shorts, _ in _options():
        for s in shorts:
            seen[s].add((long, cmd))
    clashes = {s: sorted(v) for s, v in seen.items() if len({long for long, _ in v}) > 1}
    assert not clashes, f"short flags with several long names: {clashes}"


def test_one_meaning_per_long_name():
    meaning = defaultdict(lambda: defaultdict(list))
    defaults = defaultdict(lambda: defaultdict(list))
    for cmd, long, _, p in _options():
        key = (first_sentence(p.help), _type(p), bool(p.is_flag))
        meaning[long][key].append(cmd)
        if long not in flags.VERB_DEFAULTS:
            defaults[long][repr(p.default)].append(cmd)
    clashes = {n: dict(v) for n, v in meaning.items() if len(v) > 1}
    assert not clashes, "long names with several meanings (help's first sentence, type, flag or not):\n" + \
        "\n".join(f"  {n}: {v}" for n, v in clashes.items())
    differ = {n: dict(v) for n, v in defaults.items() if len(v) > 1}
    assert not differ, f"defaults that differ between commands (not declared in flags.VERB_DEFAULTS): {differ}"


def test_shared_options_say_what_flags_declares():
    for cmd, long, _, p in _options():
        if long in flags.MEANINGS:
            assert first_sentence(p.help) == flags.MEANINGS[long], (cmd, long, p.help)


def _help_text(name: str, monkeypatch, mode) -> str:
    monkeypatch.setattr(app, "rich_markup_mode", mode)
    r = runner().invoke(app, [*name.split(), "--help"], env={"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"})
    assert r.exit_code == 0, (name, r.output)
    return r.output


@pytest.mark.parametrize("mode", [None, "rich"])
def test_booleans_are_flags_without_a_value_type(monkeypatch, mode):
    for cmd, long, _, p in _options():
        if _type(p) == "bool":
            assert p.is_flag, (cmd, long)
    shown = {}
    for name, _ in _commands():
        lines = [ln for ln in _help_text(name, monkeypatch, mode).splitlines()
                 if "<bool>" in ln.lower() or "boolean" in ln.lower()]
        if lines:
            shown[name] = [" ".join(ln.replace("│", " ").split()) for ln in lines]
    assert not shown, f"boolean flags shown with a value type ({mode or 'plain'} help): {shown}"


def test_defaults_are_shown(monkeypatch):
    for name, _ in _commands():
        text = re.sub(r"-\s+", "-", " ".join(_help_text(name, monkeypatch, None).split()))   # undo wrapping
        for cmd, long, _, p in _options():
            if cmd != name or p.is_flag or p.default in (None, (), [], "") or p.show_default is False:
                continue
            assert re.search(re.escape(f"[default: {p.default}") + r"[];]", text), (name, long, p.default)


def test_device_defaults_to_auto_everywhere():
    devices = [(cmd, p.default) for cmd, long, _, p in _options() if long == "--device"]
    assert devices and all(d == "auto" for _, d in devices), devices


def test_gone_flags_and_outputs_everywhere():
    every = [(cmd, n) for cmd, _, _, p in _options() for n in list(p.opts) + list(p.secondary_opts)]
    for gone in ("-O", "--skip-existing", "--out", "--fg", "--bg-color", "--bg-image", "--bg-blur", "--trimaps",
                 "--rgba"):
        assert not [c for c, n in every if n == gone], gone
    by_cmd = defaultdict(set)
    for cmd, n in every:
        by_cmd[cmd].add(n)
    for verb in WRITERS:
        assert {"-o", "--output", "--overwrite", "--report", "--json", "-q", "-v"} <= by_cmd[verb], verb
    assert "-o" not in by_cmd["eval"] and "--report" in by_cmd["eval"]
    for verb in ("matte", "video", "eval"):
        assert {"-t", "--trimap", "--bg"} <= by_cmd[verb], verb
    assert {"-T", "--output-type"} <= by_cmd["video"] and {"-T", "--output-type"} <= by_cmd["matte"]
    assert {"--composite-bg", "--blur", "--estimate"} <= by_cmd["composite"]


# ------------------------------------------------------------------------------------------------------------------
# the card commands, as typed (real processes)
# ------------------------------------------------------------------------------------------------------------------
MATTECLI = f"{shlex.quote(sys.executable)} -m mattecli"


@pytest.fixture
def work(tmp_path):
    """img.png, t.png (its trimap), a.png (its alpha) in an empty folder; a weights cache with nothing in it."""
    ex = small_example()
    from mattecli.imaging.io import write_image

    write_image(tmp_path / "img.png", ex["hair"])
    write_image(tmp_path / "t.png", ex["hair_trimap"])
    write_image(tmp_path / "a.png", ex["hair_alpha"])
    return tmp_path


def _sh(cmd: str, cwd):
    env = dict(os.environ, NO_COLOR="1", MATTECLI_HOME=str(cwd / ".home"), MATTECLI_OFFLINE="1",
               OMP_NUM_THREADS="1")
    return subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_matte_beside_the_input_then_skip_then_overwrite(work):
    cmd = f"{MATTECLI} matte img.png --model closed-form --trimap t.png"
    p = _sh(cmd, work)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["img_alpha.png"]
    out = work / "img_alpha.png"
    first = read_image(out)
    assert first.shape == (48, 48) and first.dtype == np.uint8
    before = out.stat().st_mtime_ns
    p = _sh(cmd, work)                                       # a second run skips it, and says so
    assert p.returncode == 0 and p.stdout == "", p.stderr
    assert "1 skipped" in p.stderr and "--overwrite" in p.stderr
    assert out.stat().st_mtime_ns == before
    p = _sh(cmd + " --overwrite", work)
    assert p.returncode == 0 and p.stdout.split() == ["img_alpha.png"], p.stderr
    np.testing.assert_array_equal(read_image(out), first)
    assert sorted(f.name for f in work.iterdir() if not f.name.startswith(".")) == [
        "a.png", "img.png", "img_alpha.png", "t.png"]


@pytest.mark.parametrize("verb,args,shape", [
    ("matte", "-t t.png", (48, 48)),
    ("trimap", "--from-alpha a.png --band 2", (48, 48)),
    ("composite", "--alpha a.png", (48, 48, 3)),
])
def test_stdin_to_stdout_pipes(work, verb, args, shape):
    p = _sh(f"cat img.png | {MATTECLI} {verb} - {args} -o - > out.png", work)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    got = read_image(work / "out.png")
    assert got.shape == shape
    assert sorted(f.name for f in work.iterdir() if not f.name.startswith(".")) == [
        "a.png", "img.png", "out.png", "t.png"]                # nothing else written
    if verb == "trimap":
        assert set(np.unique(got)) <= {0, 128, 255}
    p = _sh(f"cat img.png | {MATTECLI} {verb} - {args} -o - --json > out2.png", work)
    assert p.returncode == 2 and "--json" in p.stderr


def test_a_missing_partner_fails_that_input_only_in_every_verb(tmp_path):
    for n in ("a", "b"):
        write_example(tmp_path / "img", name=n, parts=("image",))
    write_example(tmp_path / "part", name="a", parts=("trimap", "alpha"))
    for verb, args in (("matte", ["--model", "closed-form", "-t", tmp_path / "part"]),
                       ("trimap", ["--from-alpha", tmp_path / "part", "--band", "2"]),
                       ("composite", ["--alpha", tmp_path / "part"])):
        r = runner().invoke(app, [verb, str(tmp_path / "img"), *map(str, args), "-o", str(tmp_path / verb)],
                            env={"NO_COLOR": "1"})
        assert r.exit_code == 1, (verb, r.stderr)
        assert [os.path.basename(x) for x in r.stdout.split()][0].startswith("a_"), (verb, r.stdout)
        assert "b.png" in r.stderr and "mattecli: error:" in r.stderr, (verb, r.stderr)
