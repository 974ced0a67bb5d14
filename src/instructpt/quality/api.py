"""`instructpt.decontaminate`: the decontaminate stage on records in memory (no folders), as
`templify` is the templify stage's."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import UsageError
from ..records import Entry
from ..synthesis.format import Pair
from .check import RowChecker, pair_keys
from .filters import DuplicateTable

if TYPE_CHECKING:
    from ..config import DecontaminateSettings

Record = TypeVar("Record", Entry, Mapping[str, Any])


def decontaminate(
    records: Iterable[Record],
    settings: DecontaminateSettings | None = None,
    *,
    benchmarks: Mapping[str, Iterable[str]] | None = None,
    summary: dict[str, Any] | None = None,
) -> list[Record]:
    """Synthesize records (`Entry`s or their dict rows) without the pairs that hold an n-gram of
    an evaluation set or fail a pair filter, contaminated documents cut or dropped: what
    `instructpt decontaminate` does to a folder, in the records' order and of their type.

    The evaluation texts are `benchmarks` ({name: texts}) and the settings' `eval_sets` and
    `lm_eval_tasks`; with none, only the pair filters run. `summary`, when given, is filled with
    the counts (as the stage's summary.json) and `hits` (the lines of its contamination.jsonl).
    """
    from ..config import DecontaminateSettings
    from ..io.output import entry_to_dict
    from .decontaminate import build_index

    settings = settings if settings is not None else DecontaminateSettings()
    if not isinstance(settings, DecontaminateSettings):
        raise UsageError(f"settings must be a DecontaminateSettings, not {type(settings).__name__}")
    if benchmarks is not None and not isinstance(benchmarks, Mapping):
        raise UsageError(f"benchmarks must map a name to its texts ({{'my-eval': [...]}}), "
                         f"not a {type(benchmarks).__name__}")  # fmt: skip
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        raise UsageError(f"records must be a list of Entry objects or their dict rows, not one "
                         f"{type(records).__name__}")  # fmt: skip
    options = settings.options()
    index = build_index(settings.eval_sets, settings.lm_eval_tasks, settings.lm_eval_include,
                        options.n, options.min_words, benchmarks)  # fmt: skip
    originals = list(records)
    for i, record in enumerate(originals):
        if not isinstance(record, Entry | Mapping):
            raise UsageError(f"record {i} is a {type(record).__name__}; pass Entry objects or their "
                             "dict rows")  # fmt: skip
    rows = [entry_to_dict(r, True) if isinstance(r, Entry) else dict(r) for r in originals]
    ids = [row.get("id") for row in rows]
    if len(set(ids)) != len(ids) or None in ids:
        raise UsageError("every record needs its own `id` (as synthesize writes them)")
    duplicates = None
    if options.filters.dedupe:
        duplicates = DuplicateTable.build(pair_keys([(0, rows)], index, options))
    outcome = RowChecker(index, options, duplicates).check(0, rows)
    if summary is not None:
        summary.update(outcome.stats, hits=outcome.hits, index=index.describe())
    by_id = dict(zip(ids, originals))
    kept: list[Any] = []
    for row in outcome.rows:
        original = by_id[row["id"]]
        if isinstance(original, Entry):
            pairs = [Pair(p["instruction"], p["response"]) for p in row["pairs"]]
            kept.append(dataclasses.replace(original, text=row["text"], pairs=pairs))
        else:
            kept.append(row)
    return kept
