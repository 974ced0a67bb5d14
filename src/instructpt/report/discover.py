"""Which stage outputs a report covers: folders recognised by the manifest.json each stage writes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError, first_line
from ..io.output import MANIFEST, STAGES
from ..io.output import stage_of as manifest_stage


def stage_of(folder: Path) -> tuple[str, dict[str, Any]] | None:
    """Which stage wrote `folder` (by its manifest), or None when it holds no manifest of ours.

    The manifest's own "stage" is taken when it has one; older manifests are recognised by their
    settings (`io.output.stage_of`), or a finished mix by its sources at the top level. A
    manifest naming no stage of ours is not ours to read.
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
    stage = manifest_stage(manifest)
    if stage is None and isinstance(manifest.get("sources"), list):
        stage = "mix"  # a finished mix written before manifests named their stage
    return (stage, manifest) if stage is not None else None


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
        raise UsageError(f"no output folder given: pass a run workdir or stage outputs ({', '.join(STAGES)})")
    for raw in paths:
        folder = Path(raw)
        if not folder.is_dir():
            raise UsageError(
                f"{folder} is not a folder: pass a run workdir or a stage output ({', '.join(STAGES)})"
            )
        stage = stage_of(folder)
        if stage is not None:
            add(stage[0], folder, stage[1])
            continue
        children = [(child, stage_of(child)) for child in sorted(folder.iterdir()) if child.is_dir()]
        children = [(child, stage) for child, stage in children if stage is not None]
        if not children:
            raise UsageError(
                f"{folder} is not an instructpt output: no stage's manifest.json ({', '.join(STAGES)}) "
                "in it or its subfolders"
            )
        for child, (name, manifest) in children:
            add(name, child, manifest)
    return found
