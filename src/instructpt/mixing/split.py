"""The paper's corpus split on the mix side (docs/method.md §5): `mix --recipe scratch` leaves out of
the raw share the documents that the augmented texts' `synthesize --fraction F` run converted, and
refuses a converted document given again as raw.

* **The complement.** Each augmented input that is a templify folder is traced back (templify and
  decontaminate manifests record their input folder) to its synthesize run. When that run used
  `--fraction F` < 1, every raw file that was one of its inputs (the same path, or the same name
  and size) is read with the run's id and text fields, and its documents that F selects
  (instructpt/split.py) are left out while tokenizing, counted as `raw_excluded_converted`.
* **The refusal.** After tokenizing, no raw document id may be a document id of the augmented
  texts (their `source_ids`, part suffixes removed). The check holds 8 bytes per augmented
  document (a sorted hash array), then confirms the hash matches exactly by id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..io.corpus import CorpusReader, RemotePath, file_size
from ..io.output import MANIFEST, OutputDir, stage_of
from ..io.shards import read_rows
from ..records import Document
from ..split import NotSelected, doc_id_of, id_hash
from .recipes import MixConfig, SourceSpec

SHOWN = 5  # ids named in the refusal


def file_key(f: Any) -> str:
    """A file's identity for the complement: its resolved path (a URL as given)."""
    return str(f) if isinstance(f, RemotePath) or "://" in str(f) else str(Path(f).resolve())


def trace_synthesis(path: str) -> tuple[Path, dict[str, Any]] | None:
    """(folder, settings) of the synthesize run behind a templify (or decontaminate) folder."""
    folder = Path(path)
    for _ in range(4):  # templify -> decontaminate -> synthesize at most
        manifest = OutputDir(folder).read_manifest() if (folder / MANIFEST).is_file() else None
        settings = manifest.get("settings") if isinstance(manifest, dict) else None
        if not isinstance(settings, dict):
            return None
        stage = stage_of(manifest)
        if stage == "synthesize":
            return folder, settings
        if stage not in ("templify", "decontaminate") or not isinstance(settings.get("source"), str):
            return None
        folder = Path(settings["source"])
    return None


def _sources(config: MixConfig) -> tuple[SourceSpec | None, SourceSpec | None]:
    names = {s.name: s for s in config.sources}
    if config.recipe != "scratch":
        return None, None
    return names.get("augmented"), names.get("raw")


def with_corpus_split(config: MixConfig, inputs: dict[str, list[Any]], log: Callable[[str], None],
                      trace: Callable[[str], tuple[Path, dict[str, Any]] | None] = trace_synthesis
                      ) -> MixConfig:  # fmt: skip
    """`config` with its `corpus_split` (the raw files to take the complement of, and F) and the
    raw source read with the synthesize run's id and text fields; unchanged when nothing applies.
    `trace`: the synthesize run behind an augmented path (`instructpt plan`: the run to come)."""
    augmented, raw = _sources(config)
    if augmented is None or raw is None or config.corpus_split is not None:
        return config
    fractions: dict[str, float] = {}
    runs: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    raw_files = [f for p in raw.paths for f in inputs[p]]
    for path in augmented.paths:
        traced = trace(path)
        if traced is None:
            continue
        folder, settings = traced
        fraction = settings.get("fraction", 1.0)
        if not isinstance(fraction, (int, float)) or fraction >= 1:
            continue
        synthesized = [i for i in settings.get("inputs", []) if isinstance(i, dict)]
        keys = {file_key(i.get("path", "")) for i in synthesized}
        names = {(Path(str(i.get("path", ""))).name, i.get("bytes")) for i in synthesized}
        matched = [f for f in raw_files
                   if file_key(f) in keys or (Path(str(f)).name, file_size(f)) in names]  # fmt: skip
        if not matched:
            log(f"note: {folder} converted --fraction {fraction:g} of other files than the raw inputs: "
                "no complement taken")  # fmt: skip
            continue
        for f in matched:
            fractions[file_key(f)] = max(fractions.get(file_key(f), 0.0), float(fraction))
        runs.append({"synthesize": str(folder), "fraction": float(fraction), "files": len(matched)})
        fields = fields or {"id_field": settings.get("id_field", "id"),
                            "text_field": settings.get("text_field", "text")}  # fmt: skip
        if settings.get("limit") is not None:
            log(f"note: {folder} stopped at --limit {settings['limit']}: documents selected after it are in "
                "neither the augmented nor the raw share")  # fmt: skip
    if not fractions:
        return config
    for run in runs:
        log(f"scratch: leaving out of the raw share the documents that {run['synthesize']} converted "
            f"(--fraction {run['fraction']:g}, {run['files']} raw file(s))")  # fmt: skip
    changed = {k: v for k, v in fields.items() if getattr(raw, k) != v}
    if changed:
        log(f"note: reading the raw files with the synthesize run's {changed} to take the complement")
    sources = [dataclasses.replace(s, **changed) if s is raw else s for s in config.sources]
    split = {"source": raw.name, "runs": runs, "fractions": dict(sorted(fractions.items()))}
    return dataclasses.replace(config, sources=sources, corpus_split=split)


def keep_filter(config: MixConfig, source: SourceSpec, f: Any) -> NotSelected | None:
    """The tokenize filter of input file `f` of `source`: None, or the raw share's complement."""
    split = config.corpus_split
    if not split or source.name != split.get("source"):
        return None
    fraction = split["fractions"].get(file_key(f))
    return NotSelected(fraction) if fraction is not None else None


def augmented_doc_ids(spec: SourceSpec, inputs: dict[str, list[Any]]) -> Iterator[str]:
    """The document ids behind the augmented texts: a templify folder's `source_ids` (entry ids,
    part suffixes removed), else each text's id as mix reads it."""
    for path in spec.paths:
        if (Path(path) / MANIFEST).is_file():
            for f in inputs[path]:
                for row in read_rows(f, columns=["source_ids"]):
                    yield from (doc_id_of(e) for e in row.get("source_ids") or ())
        else:
            reader = CorpusReader(inputs[path], spec.text_field, spec.id_field, spec.response_field,
                                  reject_duplicate_ids=False)  # fmt: skip
            yield from (item.id for item in reader if isinstance(item, Document))


def _hashes(ids: Iterable[str]) -> np.ndarray:
    return np.fromiter((id_hash(i) for i in ids), dtype=np.uint64)


def refuse_converted_raw(config: MixConfig, inputs: dict[str, list[Any]], raw_ids: list[str] | Any,
                         n_raw: int) -> None:  # fmt: skip
    """A UsageError when a raw document (after the complement) is also an augmented one."""
    augmented, raw = _sources(config)
    if augmented is None or raw is None or n_raw == 0:
        return
    converted = np.unique(_hashes(augmented_doc_ids(augmented, inputs)))
    raw_hashes = _hashes(raw_ids[i] for i in range(n_raw))
    candidates = np.flatnonzero(np.isin(raw_hashes, converted))
    if not len(candidates):
        return
    wanted = {raw_ids[int(i)] for i in candidates}
    found = {d for d in augmented_doc_ids(augmented, inputs) if d in wanted}  # exact, not by hash
    if not found:
        return
    first = [raw_ids[int(i)] for i in candidates if raw_ids[int(i)] in found]
    shown = ", ".join(repr(d) for d in dict.fromkeys(first[:SHOWN]))
    how = ("; they come from other files than those the synthesize run read, whose converted share mix "
           "leaves out by itself" if config.corpus_split else ", or synthesize with --fraction F < 1 and "
           "give mix the same raw files: it then leaves the converted share out by itself")  # fmt: skip
    raise UsageError(
        f"{len(first):,} raw document(s) of source {raw.name!r} are also in the augmented texts (by id: "
        f"{shown}{' ...' if len(found) > SHOWN else ''}): a converted document given again as raw would be "
        f"trained on twice. Remove them from the raw input{how} (README 'Pre-training from scratch')."
    )
