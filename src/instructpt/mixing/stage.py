"""Mix as an executor stage: shard i tokenizes the i-th input file (`mix.tokenize_shard`, into
out/.work/tokens with a completion marker); when every shard is done, `finalize` reads them back
and plans, shuffles and writes the corpus once (`mix._plan_and_write`), byte-identical to an
uninterrupted single-process run. The tokenized shards are removed once the manifest says
complete."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..executor import BaseStage, ShardResult
from ..executor.local import stderr_log
from ..io.integrity import OUTPUT_FILES, check_run, marker_files, record_output_files, write_output_file
from ..io.output import DATA_DIR, MANIFEST, REJECTS, SCRATCH_DIR, SHARDS_DIR, OutputDir
from .formats import WRITTEN
from .ftdata import render_ft_file
from .mix import _plan_and_write, input_files
from .provenance import PROVENANCE_DIR, load_meta
from .recipes import MixConfig, SourceSpec
from .split import keep_filter, refuse_converted_raw
from .tokenize import (
    TOKENS,
    Encoder,
    SourceData,
    TargetTokenizer,
    _Blobs,
    _hash,
    _Parts,
    tokenize_shard,
)

STAGE = "mix"
FT_TEXTS = f"{SCRATCH_DIR}/ft"  # --ft-data records rendered as augmented texts (ftdata.py)


class MixStage(BaseStage):
    """Mix as an executor stage: shard i tokenizes the i-th input file (sources in order, each
    source's files in order); finalize plans, shuffles and writes from the tokenized shards."""

    name = STAGE

    def __init__(
        self, config: MixConfig, tokenizer: TargetTokenizer, out: OutputDir, manifest: dict[str, Any],
        inputs: dict[str, list], log: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.config, self.tokenizer, self.out, self.manifest = config, tokenizer, out, manifest
        self.inputs, self.log = inputs, log
        self.keep_texts = config.format in ("jsonl", "parquet")
        self.hashes = {str(f): sha for p in inputs for f, sha in _shard_hashes(p).items()}
        self.encoder: Encoder | None = None

    def shards(self) -> Iterator[tuple[int, tuple[int, Any, bool]]]:
        index = 0
        for s, spec in enumerate(self.config.sources):
            for p in spec.paths:
                checked = (Path(p) / MANIFEST).is_file()
                for f in self.inputs[p]:
                    yield index, (s, f, checked)
                    index += 1

    def key(self, work: tuple[int, Any, bool]) -> dict[str, Any]:
        s, f, _ = work
        return {
            "source": self.config.sources[s].name,
            "input": str(f),
            "input_sha256": self.hashes.get(str(f)),
        }

    def prepare(self) -> None:
        self.encoder = Encoder(self.tokenizer, self.config.workers, self.log)

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None

    def run(self, index: int, work: tuple[int, Any, bool]) -> ShardResult:
        assert self.encoder is not None
        s, f, checked = work
        spec = self.config.sources[s]
        path = f
        if spec.render == "ft-data":  # fine-tuning records -> augmented texts, then as any text file
            path, checked = render_ft_file(f, self.out.root / FT_TEXTS / f"part-{index:05d}.jsonl",
                                           self.config.seed), True  # fmt: skip
        files, counts = tokenize_shard(spec, path, checked, self.encoder, self.tokenizer, self.out, index,
                                       self.keep_texts, keep=keep_filter(self.config, spec, f))  # fmt: skip
        return ShardResult(files, counts)

    def finished(self) -> dict[str, Any] | None:
        return self.manifest if self.manifest.get("complete") else None

    def finalize(self, markers: dict[int, dict[str, Any]], complete: bool, progress: Any) -> dict[str, Any]:
        if not complete:
            return self.manifest
        out = self.out
        for stale in (DATA_DIR, "hf", PROVENANCE_DIR, f"{SCRATCH_DIR}/hf-parts", f"{SCRATCH_DIR}/cache"):
            shutil.rmtree(out.root / stale, ignore_errors=True)
        by_source: list[list[int]] = [[] for _ in self.config.sources]
        files: list[list[str]] = [[] for _ in self.config.sources]  # for the provenance index
        for index, (s, f, _) in self.shards():
            by_source[s].append(index)
            files[s].append(str(Path(f).resolve()) if isinstance(f, Path) else str(f))
        data = [load_source(spec, out, idx, self.keep_texts, [markers[i]["counts"] for i in idx])
                for spec, idx in zip(self.config.sources, by_source)]  # fmt: skip
        for d, f in zip(data, files):
            d.files = f
        names = [spec.name for spec in self.config.sources]
        if "raw" in names:  # scratch: no converted document again as raw (split.py)
            raw = data[names.index("raw")]
            refuse_converted_raw(self.config, self.inputs, raw.ids, len(raw.lengths))
        excluded = [sum(markers[i]["counts"].get("excluded", 0) for i in idx) for idx in by_source]
        rejects = b"".join(
            (out.root / TOKENS / f"part-{i:05d}.rejects.jsonl").read_bytes() for i in sorted(markers)
        )
        result = _plan_and_write(self.config, self.tokenizer, out, data, self.log, excluded)
        written = {rel: rec for shard in result["shards"] for rel, rec in shard.pop(WRITTEN, {}).items()}
        self.manifest.update(result)
        self.manifest[OUTPUT_FILES] = record_output_files(
            out.root, result["shards"], (DATA_DIR, "hf", PROVENANCE_DIR), written
        )
        (out.root / REJECTS).unlink(missing_ok=True)  # an earlier run's, if this one has none
        if rejects:
            write_output_file(out.root, self.manifest, REJECTS, rejects, rejects.count(b"\n"))
        self.manifest.pop("shard_count", None)  # the tokenized shards go once the mix is written
        self.manifest["tokenize_shards"] = len(markers)
        return self.manifest

    def cleanup(self) -> None:
        for scratch in (SCRATCH_DIR, SHARDS_DIR):
            shutil.rmtree(self.out.root / scratch, ignore_errors=True)


def reopen_stage(out: OutputDir, manifest: dict[str, Any]) -> MixStage:
    """The stage of a mix folder whose shards static workers tokenized, to write it (`merge`)."""
    settings = dict(manifest["settings"])
    sources = [SourceSpec(**spec) for spec in settings.pop("sources")]
    fields = {k: v for k, v in settings.items() if k in MixConfig.__dataclass_fields__}
    config = MixConfig(**{**fields, "sources": sources, "allow_partial": bool(manifest.get("allow_partial"))})
    tokenizer = TargetTokenizer.load(config.tokenizer, config.bos_text, config.eos_text)
    if _hash(tokenizer.json) != settings.get("tokenizer_hash"):
        raise UsageError(f"the tokenizer {config.tokenizer} changed since {out.root} was started; "
                         "rerun the mix command with --rebuild")  # fmt: skip
    inputs = {p: input_files(s, p, False, config.allow_partial) for s in config.sources for p in s.paths}
    return MixStage(config, tokenizer, OutputDir(out.root, config.format), manifest, inputs, stderr_log)


def _shard_hashes(path: str) -> dict[Path, str]:
    """{data file: sha256} of the shards an instructpt output folder's markers record."""
    folder = Path(path)
    if "://" in str(path) or not (folder / MANIFEST).is_file():
        return {}
    return {folder / m["file"]: marker_files(m).get(m["file"], {}).get("sha256")
            for m in check_run(folder).good.values() if isinstance(m.get("file"), str)}  # fmt: skip


def load_source(spec: SourceSpec, out: OutputDir, indexes: Sequence[int], keep_texts: bool,
                counts: Sequence[dict[str, Any]]) -> SourceData:  # fmt: skip
    """The tokenized shards `indexes` of one source, read back as one SourceData."""
    folder = out.root / TOKENS
    data = SourceData(spec)
    lengths, first, tokens, ids, texts = [], [], [], [], []
    n = 0
    for index in indexes:
        stem = folder / f"part-{index:05d}"
        part = np.fromfile(f"{stem}.lengths", dtype=np.uint32)
        first.append(n)
        n += len(part)
        lengths.append(part)
        tokens.append(_memmap(Path(f"{stem}.tokens"), np.uint32))
        ids.append((_memmap(Path(f"{stem}.ids"), np.uint8), np.fromfile(f"{stem}.ids.idx", dtype=np.uint64)))
        if keep_texts:
            offsets = np.fromfile(f"{stem}.texts.idx", dtype=np.uint64)
            texts.append((_memmap(Path(f"{stem}.texts"), np.uint8), offsets))
    for c in counts:
        for k, v in c.items():
            if k.startswith("rejected."):
                data.rejects[k[len("rejected.") :]] = data.rejects.get(k[len("rejected.") :], 0) + v
    data.lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.uint32)
    data.offsets = np.zeros(len(data.lengths) + 1, dtype=np.int64)
    np.cumsum(data.lengths, out=data.offsets[1:])
    data.parts = _Parts(first or [0])
    data.tokens = tokens
    data.ids = _Blobs(first or [0], ids)
    data.texts = _Blobs(first or [0], texts) if keep_texts else None
    data.meta = load_meta(folder, indexes, first, [len(part) for part in lengths])
    return data


def _memmap(path: Path, dtype: Any) -> np.memmap | None:
    return np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else None
