"""`mattecli --help`, `--version`, every verb's --help and `models list` must not import torch (checked in a fresh
interpreter)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from foundation_helpers import ROOT

PROBE = """
import sys
from mattecli.cli.app import main
try:
    main({argv!r})
except SystemExit as e:
    code = e.code
else:
    code = 0
print("TORCH_LOADED" if "torch" in sys.modules else "NO_TORCH", code, file=sys.stderr)
"""


def _run(argv, tmp_path):
    env = dict(os.environ, NO_COLOR="1", MATTECLI_HOME=str(tmp_path / "home"), MATTECLI_OFFLINE="1")
    p = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=120)
    return p


def _cases():
    cases = [["--help"], ["--version"], ["trimap", "--help"], ["matte", "--help"], ["composite", "--help"]]
    if importlib.util.find_spec("mattecli.cli.models") is not None:
        cases.append(["models", "list"])
    return cases


@pytest.mark.parametrize("argv", _cases(), ids=lambda a: " ".join(a))
def test_light_commands_do_not_import_torch(argv, tmp_path):
    p = _run(argv, tmp_path)
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("NO_TORCH"), p.stderr
    assert last.split()[1] in ("0", "None"), p.stderr
    if argv == ["--version"]:
        assert p.stdout.startswith("mattecli ")
