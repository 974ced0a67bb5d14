"""A new user's first hour: docs that stand alone (docs/method.md, README snippets that run as
written), `engines list` saying what `auto` picks, a misspelt recipe, and Ctrl-C at start-up."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from instructpt.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
METHOD = ROOT / "docs" / "method.md"


def blocks(language: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^```{language}\n(.*?)^```", README, re.S | re.M)]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, terminal_width=200)


# --- docs that stand alone ------------------------------------------------------------------


def user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").iterdir()]
    return [*files, *(ROOT / "src").rglob("*.py")]


def test_nothing_cites_the_internal_spec():
    citing = [str(p.relative_to(ROOT)) for p in user_facing_files()
              if p.is_file() and re.search(r"\bSPEC\b", p.read_text(errors="replace"))]  # fmt: skip
    assert not citing


def test_every_method_citation_names_a_section_that_exists():
    sections = set(re.findall(r"^## (\d+)\. ", METHOD.read_text(), re.M))
    assert sections >= {str(i) for i in range(1, 8)}
    cited = set()
    for path in user_facing_files():
        if path.is_file():
            for first, last in re.findall(r"method\.md §(\d+)(?:-§(\d+))?", path.read_text(errors="replace")):
                cited |= {first, last} - {""}
    assert cited and cited <= sections, cited - sections


def test_help_texts_cite_the_method_page():
    for command in ("synthesize", "templify", "mix", "run", "train-synthesizer", "ft-data", "evaluate"):
        assert "SPEC" not in invoke(command, "--help").output, command
    for command in ("synthesize", "mix", "train-synthesizer"):
        assert "docs/method.md §" in invoke(command, "--help").output, command
    assert "docs/method.md" in invoke("--help").output


def test_the_readme_python_api_block_is_the_example_the_tests_run():
    """tests/test_package.py runs examples/python_api.py; the README shows that same file (less
    its docstring)."""
    example = (ROOT / "examples" / "python_api.py").read_text()
    body = example.split('"""', 2)[2].strip() if example.startswith('"""') else example.strip()
    assert body in [b.strip() for b in blocks("python")]


def test_readme_snippets_hold_no_placeholders():
    for language in ("bash", "python", "yaml", "json"):
        for block in blocks(language):
            code = "\n".join(line.split(" #")[0] for line in block.splitlines())  # comments may say more
            assert "..." not in code and "…" not in code, block
            assert not re.search(r"\[--[a-z]", code), block  # `[--option]`: optional syntax, not a command


def readme_commands() -> list[list[str]]:
    commands = []
    for block in blocks("bash"):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words[:1] == ["instructpt"]:
                commands.append([w.replace("$SLURM_ARRAY_TASK_ID", "3") for w in words[1:]])
    return commands


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_parses(args):
    """Each `instructpt ...` line of the README is a valid command line: its command exists and
    every option and value parses (nothing runs: most need a GPU or the Hub)."""
    ctx = click.Context(main, info_name="instructpt")
    command = main
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        command = command.get_command(ctx, args[0])
        assert command is not None, args
        args = args[1:]
    if args == ["--help"] or not args and isinstance(command, click.Group):
        return
    command.make_context(command.name, list(args), parent=ctx)


def test_readme_yaml_and_json_snippets_are_valid(tmp_path):
    from instructpt.config import MixSettings, SynthesizeSettings
    from instructpt.finetune.model_eval import LocalTask, resolve_suite
    from instructpt.mixing.recipes import load_recipe

    checked = set()
    for block in blocks("yaml"):
        data = yaml.safe_load(block)
        if "synthesize" in data:
            SynthesizeSettings(**data["synthesize"])
            checked.add("synthesize")
        elif "mix" in data:
            assert MixSettings(**data["mix"]).recipe_sources(["augmented/"])
            checked.add("mix")
        elif "tasks" in data:
            (tmp_path / "contracts").mkdir()
            for task in data["tasks"]:
                if isinstance(task, dict):  # rows with the fields the task declares (or the defaults)
                    keys = [task.get(k, getattr(LocalTask, k)) for k in ("input_field", "options_field",
                                                                          "gold_field")]  # fmt: skip
                    rows = [dict(zip(keys, ("q", ["a", "b"], 1)))]
                    path = tmp_path / task["path"]
                    path.write_text(json.dumps(rows) if path.suffix == ".json" else json.dumps(rows[0]))
            suite = tmp_path / "my_tasks.yaml"
            suite.write_text(block)
            names, local = resolve_suite(str(suite))
            assert names == ["arc_easy", "hellaswag"] and [t.name for t in local] == [
                "my_contracts",
                "my_triage",
            ]
            assert local[1].input_field == "question" and local[1].gold_field == "label"
            for task in local:
                task.check()  # its rows hold the fields it names, as the README's files would
            checked.add("suite")
    for block in blocks("json"):
        recipe = tmp_path / "my_recipe.json"
        recipe.write_text(block)
        assert [s.name for s in load_recipe(recipe)] == ["aug", "web", "orca", "books"]
        checked.add("recipe")
    assert checked == {"synthesize", "mix", "suite", "recipe"}


@pytest.mark.slow
def test_readme_engine_and_synthesize_snippets_run(tmp_path, tiny_model):
    """The Python blocks that need a model run as written, with `make demo`'s tiny synthesizer
    standing in for the Hub's (the one change made to them)."""
    (tmp_path / "demo-out").mkdir()
    (tmp_path / "demo-out" / "tiny-synthesizer").symlink_to(tiny_model)
    ran = 0
    for block in blocks("python"):
        if "create_engine(" not in block:
            continue
        code = block.replace('"instruction-pretrain/instruction-synthesizer"', '"demo-out/tiny-synthesizer"')
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip(), block
        ran += 1
    assert ran == 2


def test_readme_has_custom_recipes_and_the_suite_keys():
    assert "### Custom recipes" in README
    for key in ("`input_field`", "`options_field`", "`gold_field`", "`response_field`", "`augmented_weight`"):
        assert key in README, key


# --- engines list: what auto picks ----------------------------------------------------------------


def test_engines_list_says_what_auto_picks():
    from instructpt.engines.registry import registry

    registry().register("fast", "no_such_module_xyz:Engine", requires=("no_such_module_xyz",), extra="fast",
                        auto_priority=99)  # fmt: skip
    registry().register("plain", "instructpt.engines.rules:RulesEngine.from_options", auto_priority=1)
    out = invoke("engines", "list").output
    best = registry().resolve("auto")
    assert f"--engine auto picks {best} on this machine" in out and "fast" in out.splitlines()[-2]
    assert re.search(rf"^{best}\s.*\(what --engine auto picks here\)", out, re.M)
    rows = {r["name"]: r for r in json.loads(invoke("engines", "list", "--json").output)}
    assert [n for n, r in rows.items() if r["auto_pick"]] == [best]


def test_engines_list_when_auto_has_nothing_to_pick():
    from instructpt.engines.registry import registry

    for name, spec in list(registry().specs().items()):
        if spec.auto_priority is not None:
            registry().unregister(name)
    out = invoke("engines", "list").output
    assert "--engine auto picks nothing on this machine: --engine auto found no inference backend" in out


# --- mix --recipe with a typo --------------------------------------------------------------------


@pytest.mark.parametrize(
    "recipe, message",
    [
        ("scrach", "unknown recipe 'scrach': did you mean scratch? the recipes are scratch and domain"),
        ("domian", "did you mean domain?"),
        ("blend", "unknown recipe 'blend': the recipes are scratch and domain, or the path of a JSON"),
        ("my_recipe.json", "recipe file not found: my_recipe.json"),
    ],
)
def test_a_misspelt_recipe_names_the_valid_ones(tmp_path, recipe, message):
    result = CliRunner().invoke(main, ["mix", "--recipe", recipe, "--augmented", str(tmp_path), "--tokenizer",
                                       "t.json", "-o", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


# --- Ctrl-C during start-up ---------------------------------------------------------------------


def test_ctrl_c_in_a_command_prints_one_line(monkeypatch):
    @click.command("sleepy")
    def sleepy() -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(main.commands, "sleepy", sleepy)
    result = CliRunner().invoke(main, ["sleepy"])
    assert result.exit_code == 130 and result.output == "interrupted\n"


def test_ctrl_c_while_a_command_module_is_imported_prints_one_line(monkeypatch):
    import instructpt.cli as cli

    def interrupted_import(name, package=None):
        raise KeyboardInterrupt

    monkeypatch.delitem(main.commands, "status", raising=False)  # not loaded yet
    monkeypatch.setattr(cli.importlib, "import_module", interrupted_import)
    result = CliRunner().invoke(main, ["status", "out/"])
    assert result.exit_code == 130 and result.output == "interrupted\n"


def test_ctrl_c_while_the_cli_itself_is_imported_prints_one_line(monkeypatch, capsys):
    """The console script (`instructpt._entry:main`) imports the CLI inside its guard."""
    from instructpt import _entry

    class Interrupted(types.ModuleType):
        def __getattr__(self, name: str):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "instructpt.cli", Interrupted("instructpt.cli"))
    with pytest.raises(SystemExit) as stop:
        _entry.main()
    assert stop.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_the_console_script_and_python_m_run_the_cli():
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'instructpt = "instructpt._entry:main"' in scripts
    done = subprocess.run([sys.executable, "-m", "instructpt", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "instructpt" in done.stdout


def test_start_up_imports_little():
    """What a Ctrl-C can land in before the guard: `import instructpt.cli` loads no command."""
    code = ("import sys, instructpt.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('instructpt')))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(done.stdout)  # a printed list of module names
    assert loaded == ["instructpt", "instructpt._entry", "instructpt._version", "instructpt.cli"], loaded
