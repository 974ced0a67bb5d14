"""The synthesizer's fine-tuning data as a mix source (`mix --recipe scratch --ft-data DIR`): each
record `{context, pairs, dataset, kind}` of an `ft-data convert` folder (finetune/data.py) becomes
one instruction-augmented text, rendered with templify's templates (templating/render.py), as the
paper mixed it in (docs/method.md §5). A record is one shot; its id, `ft:<file stem>:<line>`,
seeds its template draws with the mix seed, so the texts are the same on every run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.corpus import expand_inputs
from ..io.files import write_atomic
from ..templating.render import AugmentedText, templify


def ft_files(path: str) -> list[Any]:
    """The record files of a converted folder (its *.jsonl, as `load_records` reads), or the file."""
    folder = Path(path)
    if folder.is_dir():
        files = sorted(folder.glob("*.jsonl"))
        if not files:
            raise UsageError(f"no fine-tuning records (*.jsonl) in {path}: pass a folder written by "
                             "`instructpt ft-data convert`")  # fmt: skip
        return files
    return expand_inputs([path])


def ft_texts(path: Path, seed: int) -> Iterator[AugmentedText]:
    """The augmented texts of one records file, in file order."""
    rows = []
    with open(path, "rb") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                pairs = [{"instruction": str(p["instruction"]), "response": str(p["response"])}
                         for p in record["pairs"]]  # fmt: skip
                context = record["context"]
                if not isinstance(context, str) or not context.strip():
                    raise ValueError("empty context")
            except (ValueError, KeyError, TypeError) as exc:
                what = f"{type(exc).__name__}: {exc}"
                raise UsageError(f"{path}:{lineno}: not a fine-tuning record {{context, pairs: "
                                 f"[{{instruction, response}}]}} ({what})") from None  # fmt: skip
            rid = f"ft:{path.stem}:{lineno}"
            rows.append({"id": rid, "text": context, "pairs": pairs, "chain_id": rid, "round": 0,
                         "inherits": False})  # fmt: skip
    yield from templify(rows, seed)


def render_ft_file(path: Path, target: Path, seed: int) -> Path:
    """Render the records file `path` into `target` (JSONL of augmented texts); returns `target`."""
    lines = "".join(json.dumps(t.to_dict(), ensure_ascii=False) + "\n" for t in ft_texts(Path(path), seed))
    write_atomic(target, lines.encode("utf-8"))
    return target
