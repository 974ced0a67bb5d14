"""Templify: chains of synthesized entries -> instruction-augmented texts (SPEC §4).

Consecutive entries of a chain linked by "inherits from predecessor" become one text, their
shots joined by a sampled example separator; an entry without usable pairs becomes its raw
document. Each text draws every choice (mode, patterns, option order and style, speakers,
numbering) from ONE `random.Random` seeded by a hash of its documents' ids and the user's
seed, so the output does not depend on sharding, order or resumption. Every document appears
verbatim in exactly one text; every kept pair's question and answer (or its option label)
appear in it. Templates are data (`instructpt.templates`); this module is the logic.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .format import COT_ANSWER_MARKER, COT_MARKER, OPTIONS_MARKER, Pair
from .records import Entry
from .templates import cot, dialog, fewshot, numbering, options, qa, reading, separators

# Modes and their weights (SPEC §4). Modes other than classic/dialog need >= 2 pairs per shot.
MODES_MANY_PAIRS = {"classic": 0.80, "dialog": 0.05, "numbered": 0.05, "fewshot": 0.05, "next_turn": 0.05}
MODES_ONE_PAIR = {"classic": 0.95, "dialog": 0.05}
INVERSION_RATE = 0.05  # Classic/Dialog only: the pairs first, then "write a passage"
BRIDGE_RATE = 0.5  # Classic: a bridge sentence between document and exercises
RAW = "raw"

_MANY = (tuple(MODES_MANY_PAIRS), tuple(MODES_MANY_PAIRS.values()))
_ONE = (tuple(MODES_ONE_PAIR), tuple(MODES_ONE_PAIR.values()))
_COT_TAIL = COT_MARKER  # "\nLet's think step by step."
_UNANSWERABLE = frozenset(options.UNANSWERABLE_MARKERS)


def _labels(kind: str, n: int) -> list[str]:
    if kind == "upper" and n <= 26:
        return [chr(65 + i) for i in range(n)]
    if kind == "lower" and n <= 26:
        return [chr(97 + i) for i in range(n)]
    if kind == "roman" and n <= len(_ROMAN):
        return _ROMAN[:n]
    return [str(i + 1) for i in range(n)]


_ROMAN = "i ii iii iv v vi vii viii ix x xi xii xiii xiv xv xvi xvii xviii xix xx".split()


@dataclass(slots=True)
class PairView:
    """A pair as templating sees it (SPEC §2 conventions)."""

    kind: str  # "free", "options", "cot", "options_cot"
    question: str
    answer: str
    options: list[str] | None = None
    answer_index: int | None = None  # which option is the answer
    none_index: int | None = None  # an option that is an "unanswerable" phrase
    rationale: str | None = None


def _is_unanswerable(text: str) -> bool:
    return text.casefold().strip().rstrip(".") in _UNANSWERABLE


def classify(pair: Pair) -> PairView | str:
    """The pair's kind and parts, or the reason it cannot be templated."""
    instruction, response = pair.instruction, pair.response
    rationale = None
    is_cot = instruction.endswith(_COT_TAIL)
    if is_cot:
        instruction = instruction[: -len(_COT_TAIL)].rstrip()
        rationale, marker, response = response.rpartition(COT_ANSWER_MARKER)
        rationale, response = rationale.strip(), response.strip()
        if not marker or not rationale or not response:
            return "cot_without_final_answer"
    if OPTIONS_MARKER not in instruction:
        if not instruction:
            return "empty_question"
        if is_cot:
            return PairView("cot", instruction, response, rationale=rationale)
        return PairView("free", instruction, response)
    question, _, rest = instruction.partition(OPTIONS_MARKER)
    question = question.strip()
    lines = ("- " + rest).split("\n")
    if not question or any(not line.startswith("- ") or not line[2:].strip() for line in lines):
        return "malformed_options"
    opts = [line[2:].strip() for line in lines]
    if len(opts) < 2:
        return "malformed_options"
    index = next((i for i, o in enumerate(opts) if o == response), None)
    if index is None:
        folded = response.casefold()
        index = next((i for i, o in enumerate(opts) if o.casefold() == folded), None)
    none_index = next((i for i, o in enumerate(opts) if _is_unanswerable(o)), None)
    if index is None:
        if not _is_unanswerable(response):
            return "answer_not_an_option"
        if none_index is None:  # an unanswerable answer gets a "none of the above" option
            opts.append(response)
            none_index = len(opts) - 1
        index = none_index
    kind = "options_cot" if is_cot else "options"
    return PairView(kind, question, response, opts, index, none_index, rationale)


@dataclass(frozen=True, slots=True)
class AugmentedText:
    id: str
    text: str
    source_ids: tuple[str, ...]
    n_shots: int
    n_pairs: int
    mode: str
    families: tuple[str, ...] = ()  # pattern families drawn from, for the summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "source_ids": list(self.source_ids),
            "n_shots": self.n_shots,
            "n_pairs": self.n_pairs,
            "mode": self.mode,
        }


@dataclass(slots=True)
class Shot:
    id: str
    text: str
    pairs: list[PairView]


@dataclass
class TemplifyStats:
    texts: int = 0
    documents: int = 0
    pairs_rendered: int = 0
    inversions: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    patterns: set[tuple[str, int]] = field(default_factory=set)
    pairs_dropped: Counter[str] = field(default_factory=Counter)
    shots: Counter[int] = field(default_factory=Counter)

    def add(self, other: TemplifyStats) -> None:
        self.texts += other.texts
        self.documents += other.documents
        self.pairs_rendered += other.pairs_rendered
        self.inversions += other.inversions
        self.modes.update(other.modes)
        self.families.update(other.families)
        self.patterns |= other.patterns
        self.pairs_dropped.update(other.pairs_dropped)
        self.shots.update(other.shots)

    def to_dict(self) -> dict[str, Any]:
        distinct = Counter(family for family, _ in self.patterns)
        return {
            "texts": self.texts,
            "documents": self.documents,
            "pairs_rendered": self.pairs_rendered,
            "pairs_dropped": dict(sorted(self.pairs_dropped.items())),
            "modes": dict(sorted(self.modes.items())),
            "inversions": self.inversions,
            "shots_per_text": {str(k): v for k, v in sorted(self.shots.items())},
            "families": dict(sorted(self.families.items())),
            "distinct_patterns": dict(sorted(distinct.items())),
            "distinct_patterns_total": len(self.patterns),
        }


class _Renderer:
    """Renders one text; every random choice comes from `rng`, in order."""

    def __init__(self, rng: random.Random, stats: TemplifyStats) -> None:
        self.rng = rng
        self.stats = stats
        self.used: list[str] = []

    def pick(self, family: str, patterns: tuple):
        i = int(self.rng.random() * len(patterns))
        self.stats.patterns.add((family, i))
        self.used.append(family)
        return patterns[i]

    # -- pieces -------------------------------------------------------------------------
    def option_list(self, view: PairView) -> tuple[str, str]:
        """The rendered options and the answer in their labels (options shuffled)."""
        opts = view.options or []
        order = [i for i in range(len(opts)) if i != view.none_index]
        self.rng.shuffle(order)
        texts = [opts[i] for i in order]
        answer_pos = order.index(view.answer_index) if view.answer_index in order else None
        if view.none_index is not None:
            texts.append(self.pick("none_of_the_above", options.NONE_OF_THE_ABOVE))
            if answer_pos is None:
                answer_pos = len(texts) - 1
        kind, item, answer_format = self.pick("option_style", options.ITEM_STYLES)
        labels = _labels(kind, len(texts))
        listed = "\n".join(item.format(label=lab, option=o) for lab, o in zip(labels, texts))
        answer = answer_format.format(label=labels[answer_pos], option=texts[answer_pos])
        return listed, answer

    def exercise(self, view: PairView) -> str:
        """One pair through a pattern of its kind's family (Classic and few-shot)."""
        if view.kind == "free":
            return self.pick("qa", qa.PATTERNS).format(question=view.question, answer=view.answer)
        if view.kind == "cot":
            return self.pick("cot", cot.PATTERNS).format(
                question=view.question, rationale=view.rationale, answer=view.answer
            )
        listed, answer = self.option_list(view)
        if view.kind == "options":
            return self.pick("options", options.PATTERNS).format(
                question=view.question, options=listed, answer=answer
            )
        return self.pick("options_cot", cot.OPTIONS_PATTERNS).format(
            question=view.question, options=listed, rationale=view.rationale, answer=answer
        )

    def turn_texts(self, view: PairView) -> tuple[str, str]:
        """A pair as (question turn, answer turn) for dialogs and numbered lists."""
        question, answer = view.question, view.answer
        if view.options is not None:
            listed, answer = self.option_list(view)
            question = f"{question}\n{listed}"
        if view.rationale is not None:
            answer = f"{view.rationale}\nSo the answer is: {answer}"
        return question, answer

    def document(self, text: str) -> str:
        return self.pick("reading", reading.READING_PROMPTS).format(document=text)

    # -- modes --------------------------------------------------------------------------
    def classic(self, shot: Shot, invert: bool) -> str:
        exercises = "\n\n".join(self.exercise(v) for v in shot.pairs)
        if invert:
            return self.pick("inversion", reading.INVERSIONS).format(pairs=exercises, document=shot.text)
        head = self.document(shot.text)
        if self.rng.random() < BRIDGE_RATE:
            head = f"{head.rstrip()}\n\n{self.pick('bridge', reading.BRIDGES)}"
        return f"{head.rstrip()}\n\n{exercises}"

    def dialog(self, shot: Shot, speakers: tuple[str, str], turn: str, invert: bool) -> str:
        lines = []
        for view in shot.pairs:
            q, a = self.turn_texts(view)
            lines.append(turn.format(speaker=speakers[0], text=q))
            lines.append(turn.format(speaker=speakers[1], text=a))
        conversation = "\n".join(lines)
        if invert:
            return self.pick("inversion", reading.INVERSIONS).format(pairs=conversation, document=shot.text)
        intro = self.pick("dialog_intro", dialog.INTROS)
        return f"{self.document(shot.text).rstrip()}\n\n{intro}\n{conversation}"

    def next_turn(self, shot: Shot, speakers: tuple[str, str], turn: str) -> str:
        lines = []
        last = len(shot.pairs) - 1
        for k, view in enumerate(shot.pairs):
            q, a = self.turn_texts(view)
            lines.append(turn.format(speaker=speakers[0], text=q))
            if k == last:
                lines.append(self.pick("next_turn", dialog.NEXT_TURN_PROMPTS))
            lines.append(turn.format(speaker=speakers[1], text=a))
        intro = self.pick("dialog_intro", dialog.INTROS)
        return f"{self.document(shot.text).rstrip()}\n\n{intro}\n" + "\n".join(lines)

    def numbered(self, shot: Shot) -> str:
        q_label, a_label = self.pick("numbering", numbering.STYLES)
        turns = [self.turn_texts(v) for v in shot.pairs]
        questions = "\n".join(q_label.format(n=k) + q for k, (q, _) in enumerate(turns, 1))
        answers = "\n".join(a_label.format(n=k) + a for k, (_, a) in enumerate(turns, 1))
        q_head = self.pick("numbered_questions_header", numbering.QUESTION_HEADERS)
        a_head = self.pick("numbered_answers_header", numbering.ANSWER_HEADERS)
        q_block = f"{q_head}\n{questions}" if q_head else questions
        a_block = f"{a_head}\n{answers}" if a_head else answers
        return f"{self.document(shot.text).rstrip()}\n\n{q_block}\n\n{a_block}"

    def fewshot(self, shot: Shot) -> str:
        examples = "\n\n".join(self.exercise(v) for v in shot.pairs[:-1])
        intro = self.pick("fewshot_intro", fewshot.INTROS)
        test = self.pick("fewshot_test", fewshot.TEST_PROMPTS)
        final = self.exercise(shot.pairs[-1])
        return f"{self.document(shot.text).rstrip()}\n\n{intro}\n\n{examples}\n\n{test}\n{final}"


def text_seed(source_ids: Iterable[str], seed: int) -> int:
    """A text's seed: a stable hash of its documents' ids and the user's seed."""
    digest = hashlib.blake2b(f"{seed}\x1e{chr(31).join(source_ids)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def render_text(shots: list[Shot], seed: int, stats: TemplifyStats) -> AugmentedText:
    """One instruction-augmented text from linked shots (each with >= 1 usable pair)."""
    ids = tuple(s.id for s in shots)
    r = _Renderer(random.Random(text_seed(ids, seed)), stats)
    names, weights = _MANY if min(len(s.pairs) for s in shots) >= 2 else _ONE
    mode = r.rng.choices(names, weights)[0]
    invert = mode in ("classic", "dialog") and r.rng.random() < INVERSION_RATE
    separator = r.pick("example_separator", separators.EXAMPLE_SEPARATORS) if len(shots) > 1 else ""
    speakers, turn = dialog.SPEAKERS[0], dialog.TURN_FORMATS[0]
    if mode in ("dialog", "next_turn"):
        speakers = r.pick("speakers", dialog.SPEAKERS)
        turn = r.pick("dialog_turn", dialog.TURN_FORMATS)
    parts = []
    for shot in shots:
        if mode == "classic":
            parts.append(r.classic(shot, invert))
        elif mode == "dialog":
            parts.append(r.dialog(shot, speakers, turn, invert))
        elif mode == "numbered":
            parts.append(r.numbered(shot))
        elif mode == "fewshot":
            parts.append(r.fewshot(shot))
        else:
            parts.append(r.next_turn(shot, speakers, turn))
    n_pairs = sum(len(s.pairs) for s in shots)
    stats.texts += 1
    stats.documents += len(shots)
    stats.pairs_rendered += n_pairs
    stats.inversions += invert
    stats.modes[mode] += 1
    stats.shots[len(shots)] += 1
    stats.families.update(r.used)
    return AugmentedText(ids[0], separator.join(parts), ids, len(shots), n_pairs, mode, tuple(r.used))


def _raw(entry_id: str, text: str, stats: TemplifyStats) -> AugmentedText:
    stats.texts += 1
    stats.documents += 1
    stats.modes[RAW] += 1
    stats.shots[1] += 1
    return AugmentedText(entry_id, text, (entry_id,), 1, 0, RAW)


def _fields(record: Entry | Mapping[str, Any]) -> tuple[str, str, list[Pair], str, int, bool]:
    if isinstance(record, Entry):
        return record.id, record.text, record.pairs, record.chain_id, record.round, record.inherits
    pairs = [p if isinstance(p, Pair) else Pair(p["instruction"], p["response"]) for p in record["pairs"]]
    return (
        record["id"], record["text"], pairs, record["chain_id"], record["round"], record["inherits"]
    )  # fmt: skip


def templify(
    records: Iterable[Entry | Mapping[str, Any]], seed: int = 0, stats: TemplifyStats | None = None
) -> Iterator[AugmentedText]:
    """Instruction-augmented texts from synthesize records (`Entry`s or their dict rows).

    Records are grouped into chains by `chain_id` (in order of first appearance) and
    ordered by `round`; texts come out chain by chain.
    """
    stats = stats if stats is not None else TemplifyStats()
    chains: dict[str, list[tuple[str, str, list[Pair], str, int, bool]]] = {}
    for record in records:
        row = _fields(record)
        chains.setdefault(row[3], []).append(row)
    for chain in chains.values():
        chain.sort(key=lambda row: row[4])
        current: list[Shot] = []
        for entry_id, text, pairs, _, _, inherits in chain:
            views = []
            for pair in pairs:
                view = classify(pair)
                if isinstance(view, str):
                    stats.pairs_dropped[view] += 1
                else:
                    views.append(view)
            if not views:
                if current:
                    yield render_text(current, seed, stats)
                    current = []
                yield _raw(entry_id, text, stats)
                continue
            if current and not inherits:
                yield render_text(current, seed, stats)
                current = []
            current.append(Shot(entry_id, text, views))
        if current:
            yield render_text(current, seed, stats)
