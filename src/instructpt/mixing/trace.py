"""`instructpt trace`: one training sequence of a mix, back to its documents, pairs and templates.

Reads the sequence's rows of the provenance index (provenance.py), checked against the sizes and
sha256s the manifest records, then, for each augmented text, the synthesized entries it renders:
from the input templify shard it came from to the synthesize (or decontaminate) shard of the same
index, which holds the pairs. A folder deleted or changed since the mix leaves the pieces, ids
and templates printed, with a note instead of the pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.integrity import read_verified
from ..io.output import MANIFEST, OutputDir, stage_hint, stage_of
from ..io.shards import parquet_batches

REWRITE = "rerun its mix command with --overwrite to rewrite it"


def trace_sequence(folder: str | Path, index: int, shard: int | None = None) -> dict[str, Any]:
    """The pieces of training sequence `index` of the mix in `folder` (the `index`-th of shard
    `shard` when given), each with its document, source, offsets and, for augmented texts, its
    template ids and entries with their pairs. A bad folder or index is a one-line UsageError."""
    root = Path(folder)
    manifest = OutputDir(root).read_manifest() if root.is_dir() else None
    if manifest is None:
        raise UsageError(f"{root} is not a mix output folder (no readable {MANIFEST})")
    stage = stage_of(manifest)
    if stage != "mix":
        raise UsageError(f"{stage_hint(root, stage)} (trace reads a mix output)" if stage else
                         f"{root} is not a mix output folder")  # fmt: skip
    if not manifest.get("complete"):
        raise UsageError(f"the mix in {root} is not finished: rerun its command to complete it")
    shards = manifest.get("shards") if isinstance(manifest.get("shards"), list) else []
    records = [s.get("provenance") for s in shards if isinstance(s, dict)]
    if not records or not all(isinstance(r, dict) for r in records):
        raise UsageError(f"{root} has no provenance index (it was written by an older instructpt); {REWRITE}")
    total = sum(int(r["sequences"]) for r in records)
    if shard is not None:
        if not 0 <= shard < len(records):
            raise UsageError(
                f"--shard {shard} is out of range: {root} has {len(records)} shards (0..{len(records) - 1})"
            )
        if not 0 <= index < records[shard]["sequences"]:
            raise UsageError(f"sequence {index} is out of range: shard {shard} of {root} holds "
                             f"{records[shard]['sequences']} sequences")  # fmt: skip
        index += int(records[shard]["first_sequence"])
    elif not 0 <= index < total:
        raise UsageError(f"sequence {index} is out of range: {root} holds {total:,} training sequences "
                         f"(0..{total - 1})" if total else f"{root} holds no training sequence")  # fmt: skip
    number = next(
        i
        for i, r in enumerate(records)
        if r["first_sequence"] <= index < r["first_sequence"] + r["sequences"]
    )
    record = records[number]
    data = read_verified(root / record["file"], record, REWRITE)
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = [row for batch in parquet_batches(pa.BufferReader(data))
            for row in batch.filter(pc.equal(batch["sequence"], index)).to_pylist()]  # fmt: skip
    rows.sort(key=lambda row: row["start"])
    cache: dict[str, tuple[dict[str, list[dict[str, str]]] | None, str | None]] = {}
    pieces = [_piece(row, cache) for row in rows]
    return {"folder": str(root), "sequence": index, "shard": number,
            "shard_files": shards[number].get("files", []),
            "index_in_shard": index - int(record["first_sequence"]), "sequences_total": total,
            "format": manifest.get("format"), "pack": bool(manifest.get("pack")),
            "tokens": sum(p["end"] - p["start"] for p in pieces), "pieces": pieces}  # fmt: skip


def _piece(row: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
    piece = {k: row[k] for k in ("start", "end", "doc_id", "source", "doc_offset", "doc_tokens", "input")}
    piece["templates"] = list(row["templates"] or [])
    entries = list(row["entries"] or [])
    piece["entries"] = []
    if entries:
        if row["input"] not in cache:
            cache[row["input"]] = _entries_of(row["input"])
        found, note = cache[row["input"]]
        for entry in entries:
            pairs = found.get(entry) if found is not None else None
            piece["entries"].append({"id": entry, "pairs": pairs})
        if note:
            piece["note"] = note
    return piece


def _entries_of(input_file: str) -> tuple[dict[str, list[dict[str, str]]] | None, str | None]:
    """({entry id: pairs}, None) of the synthesize shard behind one templify shard, or (None, why not)."""
    from ..templating.stage import read_records

    path = Path(input_file)
    templify = next((p for p in path.parents if (p / MANIFEST).is_file()), None)
    manifest = OutputDir(templify).read_manifest() if templify is not None else None
    if templify is None or manifest is None or stage_of(manifest) != "templify":
        return None, f"pairs not shown: the templify folder of {path} is gone or unreadable"
    rel = path.relative_to(templify).as_posix()
    marks = manifest.get("shards") if isinstance(manifest.get("shards"), dict) else {}
    number = next((k for k, m in marks.items() if isinstance(m, dict) and m.get("file") == rel), None)
    source = Path(str(manifest.get("settings", {}).get("source", "")))
    synth = OutputDir(source).read_manifest() if source.is_dir() else None
    shard = (synth or {}).get("shards", {}).get(number) if number is not None else None
    if not isinstance(shard, dict) or not (source / str(shard.get("file"))).is_file():
        return (
            None,
            f"pairs not shown: the synthesize folder {source} (input of {templify}) is gone or changed",
        )
    rows = read_records(source / shard["file"])
    pairs = {str(r["id"]): [{"instruction": p["instruction"], "response": p["response"]}
                            for p in r["pairs"] or []] for r in rows}  # fmt: skip
    return pairs, None


def format_trace(info: dict[str, Any], width: int = 100) -> str:
    """The human-readable text of `trace_sequence`'s result."""
    where = (
        f"shard {info['shard']} ({', '.join(info['shard_files'])}), sequence {info['index_in_shard']} in it"
    )
    lines = [f"sequence {info['sequence']} of {info['sequences_total']:,} in {info['folder']}: {where}; "
             f"{info['tokens']} tokens in {len(info['pieces'])} piece(s)"]  # fmt: skip
    for p in info["pieces"]:
        lines.append(f"  tokens {p['start']}-{p['end']}: {p['source']} document {p['doc_id']!r} (its tokens "
                     f"{p['doc_offset']}-{p['doc_offset'] + p['end'] - p['start']} of {p['doc_tokens']}), "
                     f"from {p['input']}")  # fmt: skip
        if p["templates"]:
            lines.append(f"    templates: {', '.join(p['templates'])}")
        for entry in p["entries"]:
            pairs = entry["pairs"]
            lines.append(
                f"    entry {entry['id']!r}: "
                + (f"{len(pairs)} pair(s)" if pairs is not None else "not found")
            )
            for pair in pairs or []:
                lines.append(f"      instruction: {_short(pair['instruction'], width)}")
                lines.append(f"      response:    {_short(pair['response'], width)}")
        if p.get("note"):
            lines.append(f"    note: {p['note']}")
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
