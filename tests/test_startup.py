"""Light commands start fast because they never import torch (a structural check; the start-up
times themselves are measured in the README's figures, not asserted here)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args",
    [["list"], ["status", "--results-dir", "{tmp}"], ["leaderboard", "--help"], ["run", "--help"],
     ["publish", "--help"]],
)
def test_light_commands_do_not_import_torch(tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = (
        "import sys\nfrom amst_bench.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stdout + out.stderr
