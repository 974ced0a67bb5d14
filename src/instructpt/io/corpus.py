"""Reading raw corpora: JSONL (plain, .gz, .zst; a .json file may hold one JSON array of
records instead), Parquet (through the shard reader of io/shards.py), and plain-text files.

`expand_inputs` turns the user's paths, folders and globs into a sorted file list;
`read_corpus` streams `Document`s from them, and a `Reject` (with its reason) for
every record that cannot be used: invalid JSON (also too deeply nested, or an integer too
long to convert), non-UTF-8 bytes, a lone surrogate (`invalid_unicode`), a missing, empty or
non-string text field, a bad or duplicate id, a text over `max_doc_chars`, an unreadable
file. A bad record is one reject and never costs the rest of its file. Nothing is dropped
without a trace. Ids come from the id field when present, else from a hash of the
text, so they are stable across runs, machines and shardings. When no record has the text
field but all share another string field, reading stops naming it (`--text-field content`).
"""

from __future__ import annotations

import glob
import gzip
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import UsageError
from ..records import Document, Reject, content_id
from .fields import BadValue, Tally, column_values, one_line, parse_line, string_field, surrogate_reject

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSED_SUFFIXES = (".gz", ".zst")
TEXT_SUFFIXES = (".txt", ".md", ".text")
PARQUET_SUFFIXES = (".parquet", ".pq")


def file_kind(path: Path) -> str | None:
    """'jsonl', 'parquet' or 'text' for a supported file name, else None."""
    name = path.name.lower()
    for comp in ("",) + COMPRESSED_SUFFIXES:
        if comp and not name.endswith(comp):
            continue
        stem = name[: len(name) - len(comp)] if comp else name
        if stem.endswith(JSONL_SUFFIXES):
            return "jsonl"
        if not comp and stem.endswith(PARQUET_SUFFIXES):
            return "parquet"
        if stem.endswith(TEXT_SUFFIXES):
            return "text"
    return None


@dataclass(frozen=True)
class RemotePath:
    """A file behind an fsspec URL (s3://, gs://, hf://datasets/..., memory://), streamed."""

    url: str

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url

    def resolve(self) -> RemotePath:
        return self


InputFile = Path | RemotePath


def is_url(item: str | Path) -> bool:
    return "://" in str(item) and not str(item).startswith("file://")


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        from ..errors import MissingExtraError

        raise MissingExtraError("reading URLs", "remote", "fsspec") from None
    return fsspec


def _expand_url(url: str, skipped: list[InputFile] | None = None) -> list[RemotePath]:
    fsspec = _fsspec()
    try:
        fs, root = fsspec.core.url_to_fs(url)
        if glob.has_magic(root):
            found = fs.glob(root)
        elif fs.isdir(root):
            found = fs.find(root)
        elif fs.isfile(root):
            found = [root]
        else:
            raise UsageError(f"input not found: {url}")
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a missing filesystem package or bad credentials
        raise UsageError(f"cannot list {url}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    paths = [RemotePath(u) for u in sorted(fs.unstrip_protocol(p) for p in found)]
    if skipped is not None:
        skipped.extend(p for p in paths if not file_kind(Path(p.name)))
    paths = [p for p in paths if file_kind(Path(p.name))]
    if not paths:
        raise UsageError(f"no .jsonl, .parquet or .txt files at {url}")
    return paths


def expand_inputs(inputs: Sequence[str | Path], skipped: list[InputFile] | None = None) -> list[InputFile]:
    """Files to read, in a stable order: folders recursively, globs expanded, sorted; URLs too.

    Files a folder, glob or URL listing holds that are not of a supported type (.csv, .tsv, no
    extension...) are left out; pass a list as `skipped` to learn which."""
    files: list[InputFile] = []
    for item in inputs:
        if is_url(item):
            files.extend(_expand_url(str(item), skipped))
            continue
        path = Path(str(item).removeprefix("file://"))
        if path.is_dir():
            from .output import expect_stage, without_run_folders  # our output folders are not input

            expect_stage(item, None, "a corpus")

            every = without_run_folders(path, sorted(p for p in path.rglob("*") if p.is_file()))
            found = [p for p in every if file_kind(p)]
            if skipped is not None:
                skipped.extend(p for p in every if not file_kind(p))
            if not found:
                raise UsageError(f"no .jsonl, .parquet or .txt files under {path}")
            files.extend(found)
        elif path.is_file():
            if file_kind(path) is None:
                raise UsageError(f"{path}: unsupported file type; use .jsonl[.gz|.zst], .parquet or .txt")
            files.append(path)
        elif glob.has_magic(str(path)):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            if skipped is not None:
                skipped.extend(p for p in matches if p.is_file() and not file_kind(p))
            matches = [p for p in matches if p.is_file() and file_kind(p)]
            if not matches:
                raise UsageError(f"no input files match {item}")
            files.extend(matches)
        else:
            raise UsageError(f"input not found: {item}")
    unique: dict[InputFile, None] = {}
    for f in files:
        unique.setdefault(f.resolve(), None)
    if not unique:
        raise UsageError("no input files given")
    return list(unique)


def file_size(f: InputFile) -> int:
    if isinstance(f, RemotePath):
        fs, root = _fsspec().core.url_to_fs(f.url)
        return int(fs.size(root))
    return f.stat().st_size


def open_raw(f: InputFile) -> IO[bytes]:
    if isinstance(f, RemotePath):
        return _fsspec().open(f.url, "rb").open()
    return open(f, "rb")


@dataclass
class CorpusReader:
    """Streams documents and rejects from `files`, in order."""

    files: Sequence[InputFile]
    text_field: str = "text"
    id_field: str = "id"
    # Instruction data (docs/method.md §5): the text is `record[text_field] + " " + record[response_field]`.
    response_field: str | None = None
    reject_duplicate_ids: bool = True
    # Records whose text has more characters than this are rejected (`too_many_chars`); None: no limit.
    max_doc_chars: int | None = None
    # A UsageError at the end when the files hold no usable document (synthesize: nothing to do).
    require_documents: bool = False

    def __post_init__(self) -> None:
        self._tally = Tally()

    def __iter__(self) -> Iterator[Document | Reject]:
        seen: set[str] = set()
        self._tally = tally = Tally()
        for path in self.files:
            try:
                for item in self._read_file(path):
                    if isinstance(item, Document) and self.reject_duplicate_ids:
                        if item.id in seen:
                            item = Reject(item.source, "duplicate_id", "id seen earlier", item.id)
                        else:
                            seen.add(item.id)
                    tally.add(item)
                    yield item
            except UsageError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken file is reported, not fatal
                item = Reject(str(path), "unreadable_file", f"{type(exc).__name__}: {exc}")
                tally.add(item)
                yield item
        if tally.documents == 0:
            self._no_documents(tally)

    def _no_documents(self, tally: Tally) -> None:
        """Stop with what to do when no record had the text field but they share another
        string field (always), or (`require_documents`) when nothing was usable."""
        field = self.text_field
        shared = (tally.shared or set()) - {self.id_field}
        if tally.records and tally.missing == tally.records and shared:
            names = sorted(shared, key=lambda k: (-tally.lengths.get(k, 0), k))
            listed = ", ".join(repr(n) for n in names[:5])
            raise UsageError(f"no record has {field!r}; they have {listed}: pass --text-field {names[0]}")
        if not self.require_documents:
            return
        where = ", ".join(str(f) for f in self.files[:3]) + (" ..." if len(self.files) > 3 else "")
        if tally.records == 0:
            raise UsageError(f"no records in {where}: the input is empty")
        reasons = ", ".join(f"{r} {n}" for r, n in tally.reasons.most_common())
        first = tally.first
        raise UsageError(f"no usable document in {where}: {tally.records} records rejected ({reasons}); "
                         f"the first: {first.source}: {first.reason} ({first.detail})")  # fmt: skip

    def _read_file(self, path: Path) -> Iterator[Document | Reject]:
        kind = file_kind(path)
        if kind == "parquet":
            yield from self._read_parquet(path)
        elif kind == "text":
            yield from self._read_text(path)
        else:
            yield from self._read_jsonl(path)

    def _read_jsonl(self, path: Path) -> Iterator[Document | Reject]:
        with _open_binary(path) as handle:
            if _is_json_array(path, handle):
                yield from self._read_json_array(path, handle.read())
                return
            for lineno, raw in enumerate(handle, 1):
                if raw.strip():
                    yield self._record(parse_line(raw), f"{path}:{lineno}")

    def _read_json_array(self, path: Path, data: bytes) -> Iterator[Document | Reject]:
        """A .json file holding one JSON array of records (as `instructpt ft-data` reads them)."""
        items = parse_line(data)
        if isinstance(items, Reject) or not isinstance(items, list):
            detail = items.detail if isinstance(items, Reject) else "not an array"
            yield Reject(str(path), "invalid_json", detail)
            return
        for k, record in enumerate(items):
            yield self._record(record, f"{path}#item{k}")

    def _record(self, record: Any, source: str) -> Document | Reject:
        if isinstance(record, Reject):
            return Reject(source, record.reason, record.detail)
        if not isinstance(record, dict):
            return Reject(source, "not_an_object", f"a JSON {type(record).__name__}")
        return self._safe_document(record, source)

    def _read_parquet(self, path: Path) -> Iterator[Document | Reject]:
        import pyarrow.parquet as pq

        from .shards import parquet_batches

        pf = pq.ParquetFile(open_raw(path))
        names = pf.schema_arrow.names
        needed = [self.text_field] + ([self.response_field] if self.response_field else [])
        for name in needed:
            if name not in names:
                raise UsageError(
                    f"{path} has no column {name!r} (columns: {', '.join(names)}); "
                    "choose the right one with --text-field (or the other field options)"
                )
        columns = needed + ([self.id_field] if self.id_field in names else [])
        row = 0
        for batch in parquet_batches(pf, columns):
            values = {name: column_values(batch, name) for name in columns}
            for k in range(batch.num_rows):
                record = {name: values[name][k] for name in columns}
                source = f"{path}#row{row}"
                row += 1
                bad = next((v for v in record.values() if isinstance(v, BadValue)), None)
                yield Reject(source, bad.reason, bad.detail) if bad else self._safe_document(record, source)

    def _read_text(self, path: Path) -> Iterator[Document | Reject]:
        with _open_binary(path) as handle:
            data = handle.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Reject(str(path), "invalid_utf8", str(exc))
            return
        yield self._safe_document({self.text_field: text}, str(path))

    def _safe_document(self, record: dict[str, Any], source: str) -> Document | Reject:
        """`_document`, with anything unexpected about one record a reject of that record only."""
        try:
            return self._document(record, source)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad record never ends the file
            return Reject(source, "bad_record", one_line(exc))

    def _document(self, record: dict[str, Any], source: str) -> Document | Reject:
        text = string_field(record, self.text_field, source)
        if isinstance(text, Reject):
            if text.reason == "missing_text":
                self._tally.lacks_text(record)
            return text
        if self.response_field is not None:
            response = string_field(record, self.response_field, source)
            if isinstance(response, Reject):
                return response
            text = text + " " + response
        doc_id = record.get(self.id_field)
        if doc_id is None or doc_id == "":
            doc_id = content_id(text)
        elif isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
            return Reject(source, "bad_id", f"{self.id_field!r} is a {type(doc_id).__name__}")
        elif isinstance(doc_id, str) and (bad := surrogate_reject(doc_id, self.id_field, source)):
            return bad
        doc_id = str(doc_id)
        if self.max_doc_chars is not None and len(text) > self.max_doc_chars:
            detail = f"{len(text):,} characters > --max-doc-chars {self.max_doc_chars:,}"
            return Reject(source, "too_many_chars", detail, doc_id)
        return Document(doc_id, text, source)


def _is_json_array(path: InputFile, handle: IO[bytes]) -> bool:
    """Whether a .json file holds one JSON array (its first non-blank byte is `[`)."""
    name = path.name.lower()
    if not name.removesuffix(".gz").removesuffix(".zst").endswith(".json"):
        return False
    peek = getattr(handle, "peek", None)
    head = peek(64) if peek is not None else b""
    return head.lstrip()[:1] == b"["


def _open_binary(path: InputFile) -> IO[bytes]:
    name = path.name.lower()
    if name.endswith(".gz") and isinstance(path, Path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    raw = open_raw(path)
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if name.endswith(".zst"):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader)  # type: ignore[arg-type]
    return raw


def read_corpus(
    inputs: Sequence[str | Path], text_field: str = "text", id_field: str = "id"
) -> Iterator[Document | Reject]:
    """Documents and rejects from paths, folders or globs (see `CorpusReader`)."""
    return iter(CorpusReader(expand_inputs(inputs), text_field, id_field))


def estimate_records(files: Sequence[InputFile]) -> int | None:
    """Records in `files` for a progress bar's total (bad lines included), or None when a
    compressed file would have to be decompressed to know. Costs one fast read of the
    plain JSONL files (newline count) and the Parquet footers."""
    total = 0
    for path in files:
        if isinstance(path, RemotePath):
            return None  # not worth a second pass over the network
        kind = file_kind(path)
        if kind == "text":
            total += 1
        elif kind == "parquet":
            import pyarrow.parquet as pq

            total += pq.ParquetFile(path).metadata.num_rows
        elif path.name.lower().endswith(COMPRESSED_SUFFIXES):
            return None
        else:
            with open(path, "rb") as handle:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b""))
    return total
