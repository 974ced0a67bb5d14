"""The package surface: the documented imports, and a core that imports no torch."""

from __future__ import annotations

import subprocess
import sys


def test_public_api():
    import instructpt
    from instructpt import (  # noqa: F401
        DecontaminateSettings,
        MixSettings,
        RunConfig,
        SynthesizeSettings,
        TemplifySettings,
        decontaminate,
        mix,
        run,
        synthesize,
        templify,
    )
    from instructpt.engines import Engine, from_function, register_engine  # noqa: F401
    from instructpt.synthesis.format import Pair, build_prompt, parse_pairs  # noqa: F401

    for name in instructpt.__all__:
        assert getattr(instructpt, name) is not None, name
    assert callable(instructpt.run) and callable(instructpt.mix)  # functions, not subpackages
    assert instructpt.decontaminate.__module__ == "instructpt.quality.api"  # the function


def test_core_imports_no_torch_or_transformers():
    code = (
        "import sys, instructpt, instructpt.cli, instructpt.synthesis.stage, instructpt.engines;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_readme_python_api_example_runs(tmp_path):
    """examples/python_api.py (shown in the README) uses every public function, offline."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "python_api.py"
    done = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "== mix -> run/train" in done.stderr + done.stdout
    assert "{'my-eval': {'documents': 0, 'pairs': 1}} {'contaminated': 1}" in done.stdout  # decontaminate
    assert "== decontaminate -> run/decontaminated" in done.stderr
    assert (tmp_path / "train" / "manifest.json").is_file() and (tmp_path / "run" / "train").is_dir()
