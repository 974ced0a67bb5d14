"""The stages' settings models: one per stage, shared by `run` YAML and the stage's command.

`SynthesizeSettings`, `DecontaminateSettings`, `TemplifySettings` and `MixSettings` (with
`SourceModel`, one custom mix source) are strict pydantic models that forbid unknown keys; each
command's flags are generated from its model's fields (cli/options.py), and each default is read
from the code that consumes it (`default_of`), so it is written once. `config.py` loads them from
a YAML file into a `RunConfig` and re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator

from .engines.options import EngineOptions
from .engines.registry import EngineSpec, registry
from .errors import UsageError
from .io.files import safe_name
from .mixing.recipes import MixConfig, SourceSpec, domain_recipe, scratch_recipe
from .quality.decontaminate import DecontaminateOptions
from .quality.filters import FilterSettings
from .settings_base import Strict, default_of
from .synthesis.guard import GUARD_WINDOW
from .synthesis.rounds import RoundSettings
from .synthesis.stage import SynthesisConfig
from .templating.settings import TemplifySettings as TemplifySettings  # its own module: a light CLI


def _common(name: str, **kwargs: Any) -> Any:
    """A synthesize setting that is a common engine option: its default and help from EngineOptions."""
    info = EngineOptions.model_fields[name]
    return Field(info.default, description=info.description, **kwargs)


class SynthesizeSettings(Strict):
    """The synthesize stage: `run` YAML's `synthesize:` section and `instructpt synthesize`'s flags
    (generated from these fields); `synthesis_config` turns it into the pipeline's SynthesisConfig."""

    inputs: list[str] = Field(min_length=1)
    engine: str = Field("auto", description="Inference backend: auto (best installed), hf, vllm, openai, "
                        "llamacpp, rules, or a plug-in; see `instructpt engines list`.")  # fmt: skip
    model: str = _common("model")
    tokenizer: str | None = _common("tokenizer")
    rounds: int = Field(
        default_of(RoundSettings, "rounds"),
        ge=1,
        description="M: documents per chain. 2 for pre-training from scratch, 3 for domain adaptation.",
    )
    max_model_len: int = _common("max_model_len", gt=0)
    max_new_tokens: int = Field(
        default_of(RoundSettings, "max_new_tokens"),
        gt=0,
        description="Most tokens generated per document (greedy decoding).",
    )
    shard_size: int = Field(
        default_of(SynthesisConfig, "shard_size"),
        ge=1,
        description="K: documents per shard, the unit of chaining, writing and resumption.",
    )
    text_field: str = Field(
        default_of(SynthesisConfig, "text_field"), description="JSONL/Parquet field with the text."
    )
    id_field: str = Field(
        default_of(SynthesisConfig, "id_field"),
        description="Field with the document id; missing ids become a hash of the text.",
    )
    long_docs: Literal["split", "truncate", "skip"] = Field(
        default_of(RoundSettings, "long_docs"), description="Documents too long for the context: split at "
        "paragraph/sentence boundaries, truncate, or skip (written to rejects.jsonl).",
    )  # fmt: skip
    max_doc_chars: int | None = Field(
        default_of(SynthesisConfig, "max_doc_chars"), gt=0, description="Reject records whose text has more "
        "characters than this (reason too_many_chars); 0 on the command line, null in YAML: no limit.",
    )  # fmt: skip
    format: Literal["parquet", "jsonl"] = Field(default_of(SynthesisConfig, "format"),
                                                description="Format of the data shards.")  # fmt: skip
    keep_generations: bool = Field(default_of(RoundSettings, "keep_generations"),
                                   description="Also store each raw generation.")  # fmt: skip
    limit: int | None = Field(
        default_of(SynthesisConfig, "limit"), ge=1, description="Stop after this many documents."
    )
    strict: bool = Field(
        default_of(SynthesisConfig, "strict"),
        description="Fail on the first bad input record instead of skipping it.",
    )
    target_tokens: int | None = Field(
        default_of(SynthesisConfig, "target_tokens"), ge=1, description="Stop cleanly once the augmented "
        "texts of the finished shards would hold this many training tokens (an estimate); a rerun with a "
        "larger target, or none, continues.",
    )  # fmt: skip
    min_parse_rate: float = Field(
        default_of(SynthesisConfig, "min_parse_rate"), ge=0, le=1, description="Stop with an error when "
        f"fewer of the last {GUARD_WINDOW} generations than this hold a parsable pair (a wrong model, "
        "tokenizer or template); 0: never.",
    )  # fmt: skip
    fraction: float = Field(
        default_of(SynthesisConfig, "fraction"), gt=0, le=1, description="Convert only this share of the "
        "documents, chosen by a hash of each id (the paper: about 0.2); `mix --recipe scratch` takes the "
        "rest of the same raw files.",
    )  # fmt: skip
    dtype: str = _common("dtype")
    device: str = _common("device")
    max_batch_tokens: int | None = _common("max_batch_tokens", gt=0)
    trust_remote_code: bool = _common("trust_remote_code")
    engine_options: dict[str, Any] = Field(
        {}, description="The engine's own options, e.g. {base_urls: [...], concurrency: 8} for openai; "
        "`instructpt engines list` shows each engine's.",
    )  # fmt: skip

    def engine_spec(self) -> EngineSpec:
        """The engine to run (`auto` resolved), or MissingExtraError saying what to install."""
        return registry().installed(self.engine)

    def options_for(self, spec: EngineSpec, origin: str = "synthesize.engine_options") -> EngineOptions:
        """The validated engine options: the common settings above + `engine_options`."""
        common = {name: getattr(self, name) for name in EngineOptions.common_fields()}
        return spec.make_options(common, self.engine_options, origin=origin)

    def synthesis_config(self, engine: str, output: str, **flags: Any) -> SynthesisConfig:
        """The pipeline's config; `flags`: overwrite, verify, rebuild."""
        return SynthesisConfig(
            inputs=list(self.inputs),
            output=output,
            model=self.model,
            engine=engine,
            tokenizer=self.tokenizer,
            text_field=self.text_field,
            id_field=self.id_field,
            shard_size=self.shard_size,
            limit=self.limit,
            format=self.format,
            max_model_len=self.max_model_len,
            strict=self.strict,
            max_doc_chars=self.max_doc_chars,
            fraction=self.fraction,
            target_tokens=self.target_tokens,
            min_parse_rate=self.min_parse_rate,
            rounds=RoundSettings(self.rounds, self.max_new_tokens, self.long_docs, self.keep_generations),
            **flags,
        )


class DecontaminateSettings(Strict):
    """The decontaminate stage (benchmark decontamination + pair filters): `run` YAML's
    `decontaminate:` section and `instructpt decontaminate`'s flags."""

    eval_sets: list[str] = Field([], description="Evaluation set: [NAME=]PATH[:FIELD1,FIELD2], PATH a JSONL "
                                 "or Parquet file, a folder of them, or a `datasets` folder saved to disk; "
                                 "FIELDS the text fields [default: every string field].")  # fmt: skip
    lm_eval_tasks: list[str] = Field([], description="lm-evaluation-harness task whose data is on this "
                                     "machine (nothing is downloaded).")  # fmt: skip
    lm_eval_include: str | None = Field(None, description="A folder of extra lm-eval task YAML files.")
    ngram: int = Field(default_of(DecontaminateOptions, "n"), ge=1,
                       description="n: words per n-gram (13 as in GPT-3 and lm-eval).")  # fmt: skip
    min_words: int = Field(default_of(DecontaminateOptions, "min_words"), ge=1,
                           description="Eval texts of min-words..n-1 words are matched whole.")  # fmt: skip
    document_action: Literal["cut", "drop"] = Field(
        default_of(DecontaminateOptions, "document_action"), description="A contaminated document: cut "
        "the match and --window characters each side (GPT-3), or drop it with its pairs.",
    )  # fmt: skip
    window: int = Field(default_of(DecontaminateOptions, "window"), ge=0,
                        description="cut: characters removed each side of a match.")  # fmt: skip
    max_instruction_chars: int | None = Field(
        default_of(FilterSettings, "max_instruction_chars"), gt=0,
        description="Drop longer instructions (0 on the command line, null in YAML: no limit).",
    )  # fmt: skip
    max_response_chars: int | None = Field(
        default_of(FilterSettings, "max_response_chars"), gt=0,
        description="Drop longer responses (0 on the command line, null in YAML: no limit).",
    )  # fmt: skip
    drop_copies: bool = Field(default_of(FilterSettings, "drop_copies"), description="Drop pairs whose "
                              "instruction or response contains the whole document.")  # fmt: skip
    min_groundedness: float | None = Field(default_of(FilterSettings, "min_groundedness"), ge=0, le=1,
                                           description="Drop pairs whose response has a smaller share of "
                                           "words found in the document [default: keep all].")  # fmt: skip
    dedupe: bool = Field(default_of(FilterSettings, "dedupe"), description="Drop pairs whose normalised "
                         "instruction + response is kept earlier in the corpus.")  # fmt: skip

    def options(self) -> DecontaminateOptions:
        filters = FilterSettings(self.max_instruction_chars, self.max_response_chars, self.drop_copies,
                                 self.min_groundedness, self.dedupe)  # fmt: skip
        return DecontaminateOptions(self.ngram, self.min_words, self.document_action, self.window, filters)


class SourceModel(Strict):
    name: str

    @field_validator("name")
    @classmethod
    def _safe(cls, name: str) -> str:
        try:
            return safe_name(name, "source name")
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    paths: list[str] = Field(min_length=1)
    weight: float | None = Field(None, gt=0)
    text_field: str = "text"
    response_field: str | None = None
    id_field: str = "id"
    repeat: int = Field(1, ge=1)  # a source without weight: every document this many times
    render: Literal["ft-data"] | None = None  # ft-data: fine-tuning records, rendered as augmented texts


class MixSettings(Strict):
    """The mix stage: `run` YAML's `mix:` section and `instructpt mix`'s flags."""

    recipe: Literal["scratch", "domain", "custom"] = Field(
        "scratch", description="scratch (augmented + raw, all of both), domain (augmented + general "
        "instructions at --ratio in target tokens), or custom: weighted sources (mix.sources in a run "
        "config, a JSON recipe file on the command line).",
    )  # fmt: skip
    tokenizer: str = Field(description="The trained model's tokenizer: folder, tokenizer.json or Hub id.")
    raw: list[str] = Field([], description="scratch: the unchanged raw texts (files or folders).")
    general: list[str] = Field([], description="domain: general instruction data (e.g. OpenOrca parquet).")
    ratio: str = Field(
        default_of(domain_recipe, "ratio"),
        description="domain: augmented:general, counted in tokens of --tokenizer.",
    )
    augmented_weight: float | None = Field(None, gt=0, description="custom: weight of the augmented texts")
    ft_data: list[str] = Field([], description="scratch: the synthesizer's fine-tuning data (`ft-data "
                               "convert` folders), rendered with templify's templates.")  # fmt: skip
    ft_repeat: int = Field(default_of(scratch_recipe, "ft_repeat"), ge=1,
                           description="scratch: times the --ft-data texts are repeated.")  # fmt: skip
    sources: list[SourceModel] = []  # custom: further sources beside the augmented texts
    question_field: str = Field(default_of(domain_recipe, "question_field"),
                                description="General data: question field.")  # fmt: skip
    response_field: str = Field(default_of(domain_recipe, "response_field"),
                                description="General data: response field.")  # fmt: skip
    text_field: str = Field(default_of(scratch_recipe, "text_field"), description="Raw data: text field.")
    format: Literal["parquet", "jsonl", "hf", "megatron", "olmo"] = Field(
        default_of(MixConfig, "format"), description="jsonl or parquet (shuffled text), hf (datasets on "
        "disk), megatron (.bin/.idx), olmo (.npy memmap + .csv.gz).",
    )  # fmt: skip
    seq_len: int = Field(default_of(MixConfig, "seq_len"), gt=0, description="Row length for --pack.")
    pack: bool = Field(
        default_of(MixConfig, "pack"),
        description="hf/megatron: pack documents into rows of --seq-len tokens.",
    )
    seed: int = Field(default_of(MixConfig, "seed"), description="Sampling and shuffling seed.")
    upsample: bool = Field(
        default_of(MixConfig, "upsample"),
        description="Allow a ratio that needs repeating a source (--no-upsample: refuse).",
    )
    workers: int = Field(
        default_of(MixConfig, "workers"),
        ge=0,
        description="Tokenizer processes (0: one per core; 1: in-process, Rust threads).",
    )
    shard_tokens: int = Field(
        default_of(MixConfig, "shard_tokens"), gt=0, description="Tokens per output shard."
    )
    bos_text: str | None = Field(
        default_of(MixConfig, "bos_text"),
        description="BOS written before every text [default: the tokenizer's].",
    )
    eos_text: str | None = Field(
        default_of(MixConfig, "eos_text"),
        description="EOS written after every text [default: the tokenizer's].",
    )

    def recipe_sources(
        self, augmented: list[str], flag: Callable[[str], str] = lambda k: f"mix.{k}"
    ) -> list[SourceSpec]:
        """The sources of the recipe, `augmented` being the templify output; `flag` names a setting
        in error messages (`mix.raw` in a config, `--raw` on the command line)."""

        def need(key: str, value: list[str], what: str) -> None:
            if not value:
                raise UsageError(f"{flag('recipe')} {self.recipe} needs {flag(key)} ({what})")

        if self.recipe == "scratch":
            need("augmented", augmented, "instruction-augmented texts")
            need("raw", self.raw, "the unchanged raw texts")
            return scratch_recipe(augmented, self.raw, self.text_field, self.ft_data, self.ft_repeat)
        if self.ft_data:
            raise UsageError(f"{flag('ft_data')} applies to the scratch recipe; in a custom one, add a "
                             "source with render: ft-data (and repeat: N)")  # fmt: skip
        if self.recipe == "domain":
            need("augmented", augmented, "instruction-augmented texts")
            need("general", self.general, "general instruction data")
            return domain_recipe(
                augmented, self.general, self.ratio, self.question_field, self.response_field
            )
        sources = [SourceSpec("augmented", augmented, self.augmented_weight)] if augmented else []
        return sources + [SourceSpec(**src.model_dump()) for src in self.sources]

    def mix_config(self, sources: list[SourceSpec], output: str, **flags: Any) -> MixConfig:
        """The mixer's config; `flags`: overwrite, verify, rebuild, allow_partial."""
        names = (
            "tokenizer",
            "recipe",
            "format",
            "seq_len",
            "pack",
            "seed",
            "upsample",
            "workers",
            "shard_tokens",
            "bos_text",
            "eos_text",
        )
        return MixConfig(sources=sources, output=output, **{k: getattr(self, k) for k in names}, **flags)
