"""`mattecli models list|info|fetch|import|verify|path|licenses` on a private registry (offline, file:// sources)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mattecli.cli.app import app
from mattecli.options import Option
from mattecli.registry import ModelEntry, Weights, WeightSource
from weights_helpers import (Route, add_entry, flip_byte_in_largest_tensor, make_entry,  # noqa: F401
                             official_pth, online_home, private_registry, server, sha)

DATA = os.urandom(20_000)


def run(*args):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def reg(private_registry, online_home, tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # tables: no width limit when stdout is not a terminal
    official = tmp_path / "dl" / "toy_weights.bin"
    official.parent.mkdir()
    official.write_bytes(DATA)
    second = Weights(tag="large", filename="toy_large.bin", sha256="ab" * 32, size=123,
                     sources=(WeightSource("manual", "https://example.org/drive", note="Google Drive"),),
                     license="Apache-2.0")
    toy = add_entry(make_entry(name="toy", data=DATA, sources=[WeightSource("url", official.as_uri())],
                               license="CC BY-NC 4.0", implemented=True, requires=frozenset({"trimap"}), outputs=("alpha", "foreground"),
                               options={"refine_mode": Option("sampling", "choice", choices=("full", "sampling")),
                                        "downsample_ratio": Option(0.25, "float", min=0, max=1, min_open=True,
                                                                   help="backbone input scale")},
                               paper="Someone et al., Toy Matting, 2024", code_license="MIT",
                               origin="github.com/someone/toy@abc123", precisions=("fp32", "fp16"),
                               extra_sets=(second,)))
    add_entry(ModelEntry(name="classic", family="classical", summary="closed-form test entry",
                         requires=frozenset({"trimap"}), code_license="MIT"))
    add_entry(make_entry(name="bgtoy", data=b"x", sources=[WeightSource("manual", "https://example.org/bg")],
                         requires=frozenset({"background"}), license="GPL-3.0"))
    add_entry(ModelEntry(name="seg", family="seg", summary="segmenter", kind="segmenter",
                         classes=("background", "person"), implemented=False,
                         weights=(Weights(tag="default", filename="seg.pth", license="MIT"),)))
    return toy, official


def test_list_table(reg):
    r = run("models", "list")
    assert r.exit_code == 0, r.output
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()[2:]}
    assert set(lines) == {"toy", "classic", "bgtoy", "seg"}
    assert "not cached" in lines["toy"] and "CC BY-NC 4.0" in lines["toy"] and "ready" in lines["toy"]
    assert "none needed" in lines["classic"]
    assert "manual download" in lines["bgtoy"]
    assert "not implemented yet" in lines["seg"]


def test_list_filters_json_and_all(reg):
    r = run("models", "list", "--requires", "trimap")
    assert r.exit_code == 0
    names = [ln.split()[0] for ln in r.stdout.splitlines()[2:]]
    assert names == ["toy", "classic"]
    r = run("models", "list", "--requires", "none", "--json")
    assert [d["name"] for d in json.loads(r.stdout)] == ["seg"]
    r = run("models", "list", "--requires", "bogus")
    assert r.exit_code == 2 and "--requires" in r.stderr
    r = run("models", "list", "--all")
    names = [ln.split()[0] for ln in r.stdout.splitlines()[2:]]
    assert names == ["toy", "toy.large", "classic", "bgtoy", "seg"]
    data = json.loads(run("models", "list", "--json").stdout)
    toy = data[0]
    assert toy["weights"][0]["sha256"] == sha(DATA) and toy["weights"][0]["cached"] is False
    assert toy["weights"][0]["license_flags"] == ["non-commercial"]
    assert toy["options"] == {"refine_mode": "sampling", "downsample_ratio": 0.25}
    assert toy["option_specs"]["refine_mode"]["choices"] == ["full", "sampling"]
    assert toy["option_specs"]["downsample_ratio"]["valid"] == "a number in (0, 1]"
    rows = json.loads(run("models", "list", "--all", "--json").stdout)
    assert [d["name"] for d in rows] == ["toy", "toy.large", "classic", "bgtoy", "seg"]
    assert rows[1]["model"] == "toy" and rows[1]["weight_set"]["tag"] == "large"
    assert rows[2]["weight_set"] is None


def test_info_prints_everything(reg):
    r = run("models", "info", "toy")
    assert r.exit_code == 0, r.output
    out = r.stdout
    for needle in ["Toy Matting, 2024", "requires:     trimap", "alpha, foreground", "refine_mode = 'sampling'",
                   "downsample_ratio = 0.25", "one of full, sampling", "backbone input scale", "fp32, fp16", "code licence: MIT", "github.com/someone/toy@abc123",
                   sha(DATA), "toy_weights.bin", "CC BY-NC 4.0  [NON-COMMERCIAL]", "trained on: toy data",
                   "SAD=1.5", "weights toy.large", "manual: https://example.org/drive", "(Google Drive)",
                   "cached:     no", "mattecli models import toy.large FILE", "20.0 KB (20,000 bytes)"]:
        assert needle in out, needle
    r = run("models", "info", "toy.large", "--json")
    d = json.loads(r.stdout)
    assert d["selected_weights"] == "large" and d["weights"][1]["size"] == 123
    r = run("models", "info", "seg")
    assert "not implemented yet" in r.stdout and "0=background, 1=person" in r.stdout
    r = run("models", "info", "toyy")
    assert r.exit_code == 2 and "did you mean toy" in r.stderr


def test_fetch_verify_path(reg, online_home):
    toy, _ = reg
    r = run("models", "fetch", "toy")
    assert r.exit_code == 0, r.output
    target = online_home / "weights" / "toy" / "default" / "toy_weights.bin"
    assert r.stdout.strip() == str(target) and target.read_bytes() == DATA
    assert "CC BY-NC 4.0" in r.stderr and "NON-COMMERCIAL" in r.stderr
    assert run("models", "path", "toy").stdout.strip() == str(target)
    r = run("models", "list")
    assert "cached" in [ln for ln in r.stdout.splitlines() if ln.startswith("toy ")][0]
    r = run("models", "info", "toy")
    assert f"cached:     yes, {target}" in r.stdout
    r = run("models", "verify")
    assert r.exit_code == 0 and "ok" in r.stdout and "toy_weights.bin" in r.stdout
    assert "toy.large" not in r.stdout  # only cached sets without a NAME
    r = run("models", "verify", "toy", "--json")
    assert [row["status"] for row in json.loads(r.stdout)] == ["ok", "missing"]
    target.write_bytes(DATA[::-1])
    r = run("models", "verify", "toy")
    assert r.exit_code == 1 and "mismatch" in r.stdout
    r = run("models", "fetch", "toy", "--force", "-q")
    assert r.exit_code == 0 and r.stderr == "" and target.read_bytes() == DATA


def test_fetch_failures_are_one_line(reg, monkeypatch):
    r = run("models", "fetch", "toy.large")
    assert r.exit_code == 1
    assert r.stderr.count("\n") >= 1 and r.stderr.splitlines()[-1].startswith("mattecli: error:")
    assert "mattecli models import toy.large /path/to/toy_large.bin" in r.stderr
    assert "https://example.org/drive" in r.stderr
    r = run("models", "path", "toy")
    assert r.exit_code == 1 and "not cached" in r.stderr
    r = run("models", "fetch", "classic")
    assert r.exit_code == 0 and "needs no weights" in r.stderr
    monkeypatch.setenv("MATTECLI_OFFLINE", "1")
    off = add_entry(make_entry(name="net", data=DATA, sources=[WeightSource("url", "https://example.org/x.bin")]))
    r = run("models", "fetch", "net")
    assert r.exit_code == 1 and "offline" in r.stderr and "skipped" not in r.stdout
    assert off.name == "net"


def test_import_cli(reg, tmp_path):
    toy, official = reg
    bad = tmp_path / "bad.bin"
    bad.write_bytes(DATA + b"!")
    r = run("models", "import", "toy", str(bad))
    assert r.exit_code == 1 and sha(DATA) in r.stderr and sha(DATA + b"!") in r.stderr
    r = run("models", "import", "toy", str(official))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("weights/toy/default/toy_weights.bin")
    assert "NON-COMMERCIAL" in r.stderr
    r = run("models", "verify", "toy")
    assert r.exit_code == 0


def test_licenses(reg):
    r = run("models", "licenses", "--json")
    rows = {d["name"]: d for d in json.loads(r.stdout)}
    assert rows["toy"]["flags"] == ["non-commercial"] and rows["bgtoy"]["flags"] == ["copyleft (GPL)"]
    assert rows["classic"]["weights_license"] == "-"
    assert "toy.large" in run("models", "licenses").stdout


@pytest.mark.parametrize("argv", [["models", "list"], ["models", "list", "--json", "--all"], ["models", "--help"],
                                  ["models", "licenses"], ["models", "info", "--help"]])
def test_models_list_and_help_do_not_import_torch(argv):
    code = ("import sys\nfrom mattecli.cli.app import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('NO-TORCH-OK')\n")
    env = dict(os.environ, MATTECLI_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "NO-TORCH-OK" in r.stdout


def test_import_refuses_pickle_without_unsafe_advice(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("MATTECLI_HOME", str(tmp_path / "home"))
    evil = tmp_path / "evil.pth"
    torch.save({"a": _Evil()}, evil)
    r = run("models", "import", "fba", str(evil))
    assert r.exit_code == 1
    err = r.stderr.strip().splitlines()[-1]
    assert "refused to load" in err and "only plain state dicts" in err and str(evil) in err
    assert "weights_only" not in err and "False" not in err


@pytest.fixture
def tiny_cli(private_registry, online_home, tmp_path):
    """The official file of a tiny implemented model (weights_helpers.TinyAdapter), served by a file:// URL."""
    (tmp_path / "dl").mkdir()
    return official_pth(tmp_path / "dl" / "tiny.pth")


def _tiny_entry(f, sha256=None):
    return add_entry(make_entry(name="tiny", family="tinyfam", filename="tiny.pth", fmt="torch", data=f.read_bytes(),
                                sha256=sha256, adapter="weights_helpers:TinyAdapter", implemented=True,
                                sources=[WeightSource("url", f.as_uri())]))


def test_damaged_converted_file_is_caught_by_verify_and_load(tiny_cli, online_home):
    import mattecli
    from mattecli.errors import ChecksumMismatch

    _tiny_entry(tiny_cli)
    r = run("models", "fetch", "tiny", "-q")
    assert r.exit_code == 0, r.output
    conv = online_home / "weights" / "tiny" / "default" / "tiny.pth.mattecli.pt"
    assert r.stdout.strip() == str(conv)
    assert run("models", "verify", "tiny").exit_code == 0
    flip_byte_in_largest_tensor(conv)
    import torch

    damaged = torch.load(conv, weights_only=True)["state_dict"]["weight"]  # torch alone would load it silently
    assert int((damaged != torch.arange(6.0).reshape(2, 3)).sum()) == 1
    r = run("models", "verify", "tiny", "--json")        # the table's layout follows the terminal's width
    assert r.exit_code == 1
    row = [x for x in json.loads(r.stdout) if x["file"] == "tiny.pth.mattecli.pt"][0]
    assert row["status"] == "mismatch" and "mattecli models fetch tiny --force" in row["detail"]
    with pytest.raises(ChecksumMismatch) as ei:
        mattecli.load_model("tiny")
    assert str(conv) in str(ei.value) and "mattecli models fetch tiny --force" in str(ei.value)
    r = run("models", "fetch", "tiny", "--force", "-q")  # the fix named in the message works
    assert r.exit_code == 0 and run("models", "verify", "tiny").exit_code == 0
    assert mattecli.load_model("tiny").net.weight.shape == (2, 3)


def test_official_file_without_registry_hash_is_recorded_and_checked(tiny_cli, online_home):
    import mattecli
    from mattecli.errors import ChecksumMismatch

    _tiny_entry(tiny_cli, sha256="")
    digest = sha(tiny_cli.read_bytes())
    r = run("models", "fetch", "tiny")
    assert r.exit_code == 0, r.output
    assert f"recorded sha256 {digest}" in r.stderr  # printed: trust on first use
    d = online_home / "weights" / "tiny" / "default"
    official = d / "tiny.pth"
    assert (d / "tiny.pth.sha256").read_text().strip() == digest
    r = run("models", "verify", "tiny", "--json")
    assert r.exit_code == 0 and [x["status"] for x in json.loads(r.stdout)] == ["ok", "converted-ok"]
    # loads of the official file check the recorded hash (drop our converted twin so the official file is loaded)
    (d / "tiny.pth.mattecli.pt").unlink()
    m = mattecli.load_model("tiny")
    assert m.weights_sha256 == digest and m.weights_path == str(official)
    official.write_bytes(official.read_bytes() + b"\0")
    r = run("models", "verify", "tiny")
    assert r.exit_code == 1 and "mismatch" in r.stdout and digest in r.stdout
    with pytest.raises(ChecksumMismatch) as ei:
        mattecli.load_model("tiny")
    assert str(official) in str(ei.value) and digest in str(ei.value)
    assert "mattecli models fetch tiny --force" in str(ei.value)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


# -- models list never cuts the licence ---------------------------------------------------------------------------
LONG = ("non-commercial: covered by the Adobe Deep Image Matting Dataset License Agreement, noncommercial use and "
        "distribution only (authors' README), see https://example.org/a-rather-long-licence-page")


def _licence_cells(text: str) -> dict:
    """NAME -> the text of its licence cell, from the table (column offsets of the dashes line) or the blocks."""
    lines = text.splitlines()
    out, name = {}, None
    if len(lines) > 1 and set(lines[1]) <= {"-", " "} and lines[1].strip():
        spans, pos = [], 0
        for dashes in lines[1].split("  "):
            spans.append((pos, pos + len(dashes)))
            pos += len(dashes) + 2
        header = [lines[0][a:b].strip() for a, b in spans]
        col = next(i for i, h in enumerate(header) if h.startswith("LICENCE"))
        for ln in lines[2:]:
            first = ln[spans[0][0]:spans[0][1]].strip()
            if first:
                name = first
            a, b = spans[col]
            out[name] = (out.get(name, "") + " " + ln[a:b]).strip()
        return out
    label, lab = None, "  licence: "
    for ln in lines:
        if not ln.startswith(" "):
            name, label = ln.strip(), None
        elif ln.startswith(lab):
            out[name], label = ln[len(lab):], True
        elif label and ln.startswith(" " * len(lab)):
            out[name] += " " + ln.strip()
        else:
            label = None
    return out


@pytest.mark.parametrize("columns", [60, 100, 200])
def test_list_wraps_the_licence_and_never_cuts_it(reg, monkeypatch, columns):
    add_entry(make_entry(name="longlic", data=b"y", license=LONG, sources=[WeightSource("url", "https://example.org/x")],
                         outputs=("alpha", "foreground", "background")))
    monkeypatch.setenv("COLUMNS", str(columns))
    r = run("models", "list")
    assert r.exit_code == 0, r.output
    assert max(len(ln) for ln in r.stdout.splitlines()) <= columns
    assert "…" not in r.stdout
    cells = _licence_cells(r.stdout)
    squash = lambda t: "".join(t.split())  # noqa: E731 - wrapping may drop the space after a comma
    assert squash(cells["longlic"]) == squash(LONG)
    assert squash(cells["toy"]) == squash("CC BY-NC 4.0")
    assert set(cells) == {"toy", "classic", "bgtoy", "seg", "longlic"}
    if columns == 200:
        assert len(r.stdout.splitlines()) < 2 + 5 + 4  # a table: at most a few wrapped lines


def test_list_of_the_real_registry_keeps_every_licence_whole(monkeypatch):
    from mattecli.registry import list_models

    monkeypatch.setenv("MATTECLI_OFFLINE", "1")
    for columns in (60, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        r = run("models", "list")
        assert r.exit_code == 0 and max(len(ln) for ln in r.stdout.splitlines()) <= columns
        cells = _licence_cells(r.stdout)
        for e in list_models():
            want = e.weights[0].license if e.weights else (e.code_license or "-")
            assert "".join(cells[e.name].split()) == "".join(want.split()), (columns, e.name)


# -- fetch: one way in, one line out ------------------------------------------------------------------------------
def test_fetch_of_an_unimplemented_model_prints_the_licence_and_fails_in_one_line(reg):
    r = run("models", "fetch", "bgtoy")
    assert r.exit_code == 1
    assert "licence of the bgtoy weights (toy_weights.bin): GPL-3.0 -- GPL" in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mattecli: error: ") and "https://example.org/bg" in last
    assert "mattecli models import bgtoy /path/to/toy_weights.bin" in last and r.stdout == ""


def test_fetch_several_names_reports_each_failure_and_exits_1(reg, online_home):
    r = run("models", "fetch", "toy", "bgtoy")
    assert r.exit_code == 1
    assert r.stdout.strip() == str(online_home / "weights" / "toy" / "default" / "toy_weights.bin")
    assert sum(ln.startswith("mattecli: error:") for ln in r.stderr.splitlines()) == 1
    r = run("models", "fetch", "toy", "nosuchmodel")
    assert r.exit_code == 2 and "nosuchmodel" in r.stderr and r.stdout == ""  # names checked before any download


def test_fetch_timeout_must_be_positive(reg):
    r = run("models", "fetch", "toy", "--timeout", "0")
    assert r.exit_code == 2 and "--timeout" in r.stderr


def test_fetch_of_a_verified_file_that_does_not_convert_exits_1_and_keeps_it(private_registry, online_home, tmp_path,
                                                                             server, monkeypatch):
    """The registry's sha256 matches but the converter refuses the file: exit 1 with why and what to do; the verified
    download stays, and the next fetch (the cause fixed) converts it without downloading again."""
    import weights_helpers

    data = official_pth(tmp_path / "tiny.pth").read_bytes()  # a .pth where the npz family expects an .npz
    server.routes["/tiny.npz"] = Route(data)
    add_entry(make_entry(name="tinynpz", family="tinyfam", filename="tiny.npz", fmt="npz", data=data,
                         adapter="weights_helpers:TinyNpzAdapter", implemented=True,
                         sources=[WeightSource("url", server.url("/tiny.npz"))]))
    r = run("models", "fetch", "tinynpz")
    assert r.exit_code == 1 and r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mattecli: error: tiny.npz: cannot convert")
    assert "stays in the cache" in last and "`mattecli models fetch tinynpz` converts it" in last
    d = online_home / "weights" / "tinynpz" / "default"
    assert (d / "tiny.npz").read_bytes() == data and not (d / "tiny.npz.mattecli.pt").exists()
    r = run("models", "fetch", "tinynpz")
    assert r.exit_code == 1 and len(server.gets("/tiny.npz")) == 1  # no second download
    w, b = weights_helpers.tiny_wb()
    monkeypatch.setattr(weights_helpers.TinyNpzConverter, "convert_file",
                        lambda self, path, spec: ({"weight": w, "bias": b}, {"converter": "fixed"}))
    r = run("models", "fetch", "tinynpz")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(d / "tiny.npz.mattecli.pt") and len(server.gets("/tiny.npz")) == 1
