"""`sftconv --help` stays fast: the command line module imports no heavy library until a command runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["numpy", "pyarrow", "pandas", "tiktoken", "datasets", "jsonschema", "msgspec", "tqdm"]


def test_importing_the_command_line_loads_no_heavy_library():
    code = f"import sys, sftconv.cli; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_help_answers_without_them():
    code = (f"import sys, runpy; sys.argv = ['sftconv', 'convert', '--help']\n"
            f"try:\n    runpy.run_module('sftconv', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--workers" in out and out.endswith("[]\n")
