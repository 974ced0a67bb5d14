"""Which stage outputs a report covers: folders recognised by the manifest.json each stage writes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError, first_line
from ..io.output import MANIFEST

STAGES = ("synthesize", "templify", "mix")


def _guess_stage(manifest: dict[str, Any]) -> str | None:
    """The stage of a manifest that does not name it (written before manifests recorded "stage")."""
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    # A finished mix has its sources at the top level; an unfinished one only in its settings.
    if isinstance(manifest.get("sources"), list) or isinstance(settings.get("sources"), list):
        return "mix"
    if "templates" in settings:
        return "templify"
    if "rounds" in settings:
        return "synthesize"
    return None


def stage_of(folder: Path) -> tuple[str, dict[str, Any]] | None:
    """Which stage wrote `folder` (by its manifest), or None when it holds no manifest of ours.

    The manifest's own "stage" is taken when it has one; older manifests are recognised by their
    settings. A manifest naming a stage this report does not cover is not ours to read.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {first_line(exc)}") from None
    if not isinstance(manifest, dict):
        return None
    stage = manifest.get("stage")
    if not isinstance(stage, str):
        stage = _guess_stage(manifest)
    return (stage, manifest) if stage in STAGES else None


def find_stages(paths: Iterable[str | Path]) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The output folders among `paths` by stage: {"synthesize": (folder, manifest), ...}.

    A path is one stage's output folder, or a folder whose subfolders are (a `run` workdir).
    """
    found: dict[str, tuple[Path, dict[str, Any]]] = {}

    def add(stage: str, folder: Path, manifest: dict[str, Any]) -> None:
        if stage in found and found[stage][0].resolve() != folder.resolve():
            raise UsageError(
                f"two {stage} outputs given ({found[stage][0]}, {folder}): report one run at a time"
            )
        found[stage] = (folder, manifest)

    paths = list(paths)
    if not paths:
        raise UsageError("no output folder given: pass a run workdir or synthesize/templify/mix outputs")
    for raw in paths:
        folder = Path(raw)
        if not folder.is_dir():
            raise UsageError(
                f"{folder} is not a folder: pass a run workdir or a synthesize/templify/mix output"
            )
        stage = stage_of(folder)
        if stage is not None:
            add(stage[0], folder, stage[1])
            continue
        children = [(child, stage_of(child)) for child in sorted(folder.iterdir()) if child.is_dir()]
        children = [(child, stage) for child, stage in children if stage is not None]
        if not children:
            raise UsageError(
                f"{folder} is not an instructpt output: no synthesize, templify or mix manifest.json "
                "in it or its subfolders"
            )
        for child, (name, manifest) in children:
            add(name, child, manifest)
    return found
