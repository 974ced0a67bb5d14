"""The package surface: the documented imports, and a core that imports no torch."""

from __future__ import annotations

import subprocess
import sys


def test_public_api():
    from instructpt import Pair, build_prompt, parse_pairs, synthesize  # noqa: F401
    from instructpt.engines import Engine, from_function, register_engine  # noqa: F401


def test_core_imports_no_torch_or_transformers():
    code = (
        "import sys, instructpt, instructpt.cli, instructpt.pipeline, instructpt.engines;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
