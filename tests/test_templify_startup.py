"""`instructpt templify` starts light: a run loads neither the other stages' settings (and with
them the engines, quality filters, mixing code and YAML) nor asyncio, and writing its texts does
not make pyarrow import pandas (BENCHMARKS §3: together ~0.4 s of a 1.7 s run before)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["instructpt.config", "instructpt.stage_settings", "instructpt.engines", "instructpt.quality",
         "instructpt.mixing", "yaml", "asyncio", "pandas"]  # fmt: skip


def test_a_templify_run_loads_only_what_it_uses(tmp_path, tokenizer) -> None:
    from click.testing import CliRunner

    from instructpt.cli import main

    from .test_pipeline import make_corpus

    tok = tmp_path / "tokenizer.json"
    tokenizer.backend.save(str(tok))
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=12)
    synthesized = CliRunner().invoke(main, ["synthesize", str(corpus), "-o", str(tmp_path / "syn"),
                                            "--engine", "rules", "--model", str(tok)])  # fmt: skip
    assert synthesized.exit_code == 0, synthesized.output
    out = tmp_path / "aug"
    probe = (
        "import json, sys\n"
        "from instructpt.cli import main\n"
        f"main(['templify', {str(tmp_path / 'syn')!r}, '-o', {str(out)!r}], standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert [h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules)] == []
    assert "instructpt.templating.stage" in modules and "pyarrow.parquet" in modules
    assert len(list((out / "data").glob("*.parquet"))) == 1 and (out / "summary.json").is_file()
