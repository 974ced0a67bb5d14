"""The mix totals of `instructpt plan` (planning.py), in tokens of `mix.tokenizer` as `instructpt
mix` counts them: each unweighted source read as mix reads it (fine-tuning records rendered as mix
renders them, the scratch raw share less the documents `synthesize.fraction` converts: the corpus
split of mixing/split.py), the augmented texts' estimate scaled by the corpus' tokens with that
tokenizer per synthesizer token, weighted sources from their weights."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import planning
from .errors import UsageError

if TYPE_CHECKING:
    from .config import RunConfig
    from .mixing.recipes import MixConfig, SourceSpec
    from .mixing.tokenize import TargetTokenizer
    from .tokenization import Tokenizer


def _same_source(a: str, b: str) -> bool:
    """Whether two tokenizer names are one tokenizer: the same name, or the same local path."""
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


@dataclass
class MixCounter:
    """`mix.tokenizer` and its counts: a corpus read with the same settings is tokenized once, and
    no corpus again when it is the synthesizer's tokenizer (its counts are reused)."""

    name: str
    tokenizer: Tokenizer
    target: TargetTokenizer  # BOS/EOS text and vocabulary size, as `instructpt mix` has them
    same: bool  # the synthesizer's tokenizer
    sample: int | None
    counts: dict[tuple[Any, ...], planning.CorpusCount] = field(default_factory=dict)

    @classmethod
    def load(cls, config: RunConfig, synthesizer: Tokenizer, sample: int | None) -> MixCounter | None:
        from .mixing.tokenize import TargetTokenizer
        from .tokenization import load_tokenizer

        m, s = config.mix, config.synthesize
        if m is None:
            return None
        name = str(m.tokenizer or s.tokenizer or s.model)
        same = _same_source(name, str(s.tokenizer or s.model))
        try:
            loaded = synthesizer if same else load_tokenizer(name, hint="set mix.tokenizer to a local folder")
            return cls(name, loaded, TargetTokenizer.of(loaded, name, m.bos_text, m.eos_text), same, sample)
        except UsageError as exc:
            raise UsageError(f"mix.tokenizer: {exc}") from None

    def _count(
        self, paths: Sequence[Any], split: tuple[Any, ...] = (), **reading: Any
    ) -> planning.CorpusCount:
        """`count_corpus` with this tokenizer, once per corpus and reading (`split`: the key of
        `reading["keep_of"]`, the corpus split it applies)."""
        settings = tuple(sorted((k, v) for k, v in reading.items() if k != "keep_of"))
        key = (tuple(map(str, paths)), split, settings)
        if key not in self.counts:
            self.counts[key] = planning.count_corpus(paths, self.tokenizer, sample=self.sample, **reading)
        return self.counts[key]

    def tokens(self, mix: MixConfig, spec: SourceSpec) -> int:
        """An unweighted source's tokens (once; `repeat` aside) as `instructpt mix` counts them:
        BOS + text + EOS per document, fine-tuning records rendered as mix renders them, the raw
        share less the documents synthesis converts (`mix.corpus_split`, mixing/split.py)."""
        from .mixing.ftdata import render_ft_file
        from .mixing.mix import input_files
        from .mixing.split import keep_filter

        files = [f for p in spec.paths for f in input_files(spec, p)]
        reading: dict[str, Any] = {"text_field": spec.text_field, "id_field": spec.id_field,
                                   "response_field": spec.response_field, "reject_duplicate_ids": False,
                                   "wrap": (self.target.bos_text, self.target.eos_text)}  # fmt: skip
        if spec.render == "ft-data":  # rendered with the mix seed, then read as any text file
            with tempfile.TemporaryDirectory() as tmp:
                rendered = [render_ft_file(f, Path(tmp) / f"part-{i:05d}.jsonl", mix.seed)
                            for i, f in enumerate(files)]  # fmt: skip
                n = planning.count_corpus(rendered, self.tokenizer, sample=self.sample, **reading)
            return round(n.raw_tokens * n.scale)
        split = mix.corpus_split
        if split and split.get("source") == spec.name:
            n = self._count(files, tuple(sorted(split["fractions"].items())),
                            keep_of=functools.partial(keep_filter, mix, spec), **reading)  # fmt: skip
        else:
            n = self._count(files, **reading)
        return round(n.raw_tokens * n.scale)

    def per_synthesizer_token(self, config: RunConfig, corpus: planning.CorpusCount) -> float:
        """Tokens of the synthesize inputs with this tokenizer per synthesizer token (`corpus`,
        the same documents): the scale of the augmented texts' estimate (1: the same tokenizer)."""
        s = config.synthesize
        if self.same or not corpus.raw_tokens:
            return 1.0
        n = self._count(s.inputs, text_field=s.text_field, id_field=s.id_field, limit=s.limit,
                        max_doc_chars=s.max_doc_chars, fraction=s.fraction)  # fmt: skip
        return n.raw_tokens / corpus.raw_tokens


# Keys of the plan's "mix" that are not token counts of a source.
MIX_META = ("recipe", "total", "ratio", "notes", "tokenizer", "vocab_size", "tokens_per_synthesizer_token",
             "augmented_synthesizer_tokens")  # fmt: skip


def mix_budget(config: RunConfig, augmented: int, counter: MixCounter | None, corpus: planning.CorpusCount
         ) -> dict[str, Any] | None:  # fmt: skip
    """Training tokens after the mix recipe, in tokens of `mix.tokenizer` (see the module doc)."""
    from .mixing.recipes import parse_ratio

    m = config.mix
    if m is None or counter is None:
        return None
    scale = counter.per_synthesizer_token(config, corpus)
    head: dict[str, Any] = {"tokenizer": counter.name, "vocab_size": counter.target.vocab_size,
                            "tokens_per_synthesizer_token": round(scale, 4),
                            "augmented_synthesizer_tokens": augmented}  # fmt: skip
    augmented = round(augmented * scale)
    if m.recipe == "domain":
        a, g = parse_ratio(m.ratio)
        general = round(augmented * g / a)
        return {"recipe": "domain", **head, "ratio": m.ratio, "augmented": augmented, "general": general,
                "total": augmented + general}  # fmt: skip
    notes: list[str] = []
    mix = _mix_config(config, notes.append)
    sources: dict[str, int] = {"augmented": augmented}
    for spec in mix.sources[1:]:
        if spec.weight is None:  # every document, `repeat` times
            sources[spec.name] = counter.tokens(mix, spec) * spec.repeat
        elif m.augmented_weight:
            sources[spec.name] = round(augmented * spec.weight / m.augmented_weight)
        else:
            notes.append(f"{spec.name}: weighted, but the augmented texts have no weight to scale it by")
    return {"recipe": m.recipe, **head, **sources, "total": sum(sources.values()), "notes": notes}


def scratch_refusal(config: RunConfig) -> str | None:
    """Why `instructpt mix` would refuse the scratch recipe of `config` once synthesis is done, or
    None: with synthesize.fraction 1 every document of a synthesize input is converted, so the same
    file given again in mix.raw would be trained on twice (mixing/split.py refuses it). Said by
    `instructpt plan`, and by `instructpt run` before any stage, not after the GPU hours."""
    from .io.corpus import expand_inputs
    from .mixing.split import file_key

    m, s = config.mix, config.synthesize
    if m is None or m.recipe != "scratch" or s.fraction < 1 or not m.raw:
        return None
    try:
        converted = {file_key(f) for f in expand_inputs(s.inputs)}
        both = [str(f) for f in expand_inputs(m.raw) if file_key(f) in converted]
    except (UsageError, OSError):  # a missing input: the stage that reads it says so
        return None
    if not both:
        return None
    more = f" (and {len(both) - 1} more)" if len(both) > 1 else ""
    return (f"mix.raw {both[0]}{more} is also a synthesize input, converted whole (synthesize.fraction "
            f"{s.fraction:g}): mix would refuse to train on its documents twice, after synthesis. Set "
            "synthesize.fraction below 1 (mix then takes the rest as raw), or give mix.raw other "
            "files")  # fmt: skip


def _mix_config(config: RunConfig, log: Callable[[str], None]) -> MixConfig:
    """The mix of `instructpt run CONFIG` as `instructpt mix` will see it (workflow.py): the
    recipe's sources, and the scratch raw share's corpus split taken from the synthesize settings
    (mixing/split.py: what the run's synthesize manifest will record)."""
    from .io.corpus import expand_inputs
    from .mixing.mix import input_files
    from .mixing.split import with_corpus_split

    m, s = config.mix, config.synthesize
    assert m is not None
    work = Path(config.workdir)
    specs = m.recipe_sources([str(work / "augmented")])
    mix = m.mix_config(specs, str(work / "train"))
    if m.recipe != "scratch" or s.fraction >= 1:
        return mix
    inputs = {p: input_files(spec, p) for spec in specs[1:] if spec.render is None for p in spec.paths}
    synthesized = work / "synthesized"
    settings = s.synthesis_config(s.engine, str(synthesized)).fingerprint_settings(expand_inputs(s.inputs))
    return with_corpus_split(mix, inputs, log, trace=lambda _: (synthesized, settings))
