"""Templify: chains of synthesized entries -> instruction-augmented texts (docs/method.md §4).

Consecutive entries of a chain linked by "inherits from predecessor" become one text, their
shots joined by a sampled example separator; an entry without usable pairs becomes its raw
document. Each text draws every choice (mode, patterns, option order and style, speakers,
numbering) from ONE `random.Random` seeded by a hash of its documents' ids and the user's
seed, so the output does not depend on sharding, order or resumption. Every document appears
verbatim in exactly one text; every kept pair's question and answer (or its option label)
appear in it. Templates are data (`instructpt.templating.templates`); this module is the logic.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import UsageError
from ..records import Entry
from ..synthesis.classify import PairView, classify
from ..synthesis.format import Pair
from .stats import TemplifyStats
from .templates import cot, dialog, fewshot, numbering, options, qa, reading, separators
from .texts import AugmentedText, Shot, entry_fields, raw_text

# Modes and their weights (docs/method.md §4). Modes other than classic/dialog need >= 2 pairs per shot.
MODES_MANY_PAIRS = {"classic": 0.80, "dialog": 0.05, "numbered": 0.05, "fewshot": 0.05, "next_turn": 0.05}
MODES_ONE_PAIR = {"classic": 0.95, "dialog": 0.05}
INVERSION_RATE = 0.05  # Classic/Dialog only: the pairs first, then "write a passage"
BARE_RATE = 0.5  # a text shows its documents with no reading prompt (the reference: about half)
BRIDGE_RATE = 0.5  # Classic: a bridge sentence between document and exercises
# A text renders its multiple-choice pairs without their option lists (FLAN's option-free
# variants) at this rate, unless one of them answers "None of the above", which needs its list;
# a little over half so that about half of all multiple-choice pairs come out option-free.
MC_FREE_RATE = 0.55
NUMBERED_BEFORE_RATE = 0.5  # Numbered: the questions come before the document
FEWSHOT_INLINE_RATE = 0.5  # Inline few-shot: answer first, explanation after (else exercises)
RENDER_VERSION = 2  # bump when rendering changes in a way the rates and library do not show

_MANY = (tuple(MODES_MANY_PAIRS), tuple(MODES_MANY_PAIRS.values()))
_ONE = (tuple(MODES_ONE_PAIR), tuple(MODES_ONE_PAIR.values()))


_OPTION_FREE = tuple(i for i in range(len(options.PATTERNS)) if i not in set(options.WITH_OPTIONS))
_ROMAN = "i ii iii iv v vi vii viii ix x xi xii xiii xiv xv xvi xvii xviii xix xx".split()


def _labels(kind: str, n: int) -> list[str]:
    if kind == "upper" and n <= 26:
        return [chr(65 + i) for i in range(n)]
    if kind == "lower" and n <= 26:
        return [chr(97 + i) for i in range(n)]
    if kind == "roman" and n <= len(_ROMAN):
        return _ROMAN[:n]
    if kind == "ROMAN" and n <= len(_ROMAN):
        return [r.upper() for r in _ROMAN[:n]]
    return [str(i + 1) for i in range(n)]


class _Renderer:
    """Renders one text; every random choice comes from `rng`, in order.

    A text draws one pattern per pair kind (and one option item style, option header and
    "none of the above" phrasing) the first time it needs one, and renders every pair and
    every shot of that kind with it (docs/method.md §4).
    """

    def __init__(self, rng: random.Random, stats: TemplifyStats, needs_options: bool) -> None:
        self.rng = rng
        self.stats = stats
        self.needs_options = needs_options  # some MC pair's answer needs its list
        self.ids: dict[str, None] = {}  # template ids used, in order
        self.used: list[str] = []  # the family of every draw
        self.last_id = ""
        self.once: dict[str, Any] = {}  # per-text draws by family
        self.kind_ids: dict[str, set[str]] = {}  # pattern ids that rendered each kind
        self.kind_cache: dict[str, str] = {}  # the pattern of each kind, once drawn
        self.show_options: bool | None = None  # turn-based layouts: a per-text coin
        self.reading: str | None = None  # None: the bare document

    def pick(self, family: str, patterns: tuple, among: tuple[int, ...] | None = None) -> Any:
        if among is None:
            i = int(self.rng.random() * len(patterns))
        else:
            i = among[int(self.rng.random() * len(among))]
        self.used.append(family)
        self.last_id = tid = f"{family}/{i}"
        self.ids[tid] = None
        return patterns[i]

    def per_text(self, family: str, patterns: tuple, among: tuple[int, ...] | None = None) -> Any:
        if family not in self.once:
            self.once[family] = (self.pick(family, patterns, among), self.last_id)
        return self.once[family][0]

    def kind_pattern(self, kind: str) -> str:
        if (cached := self.kind_cache.get(kind)) is not None:  # drawn once per text, id recorded
            return cached
        if kind == "free":
            pattern = self.per_text("qa", qa.PATTERNS)
            family = "qa"
        elif kind == "cot":
            pattern = self.per_text("cot", cot.PATTERNS)
            family = "cot"
        elif kind == "options":
            if "options" not in self.once:
                free = not self.needs_options and self.rng.random() < MC_FREE_RATE
                self.per_text("options", options.PATTERNS, _OPTION_FREE if free else options.WITH_OPTIONS)
            pattern = self.once["options"][0]
            family = "options"
        else:
            pattern = self.per_text("options_cot", cot.OPTIONS_PATTERNS)
            family = "options_cot"
        self.kind_ids[kind] = {self.once[family][1]}
        self.kind_cache[kind] = pattern
        return pattern

    def mc_shows_options(self) -> bool:
        """Turn-based and inline layouts: whether this text lists multiple-choice options."""
        if self.show_options is None:
            self.show_options = self.needs_options or self.rng.random() >= MC_FREE_RATE
        return self.show_options

    def count_mc(self, view: PairView, shown: bool) -> None:
        events = self.stats.events
        if view.kind == "options":
            events["mc_pairs"] += 1
            events["mc_no_options"] += not shown
        else:
            events["mc_cot_pairs"] += 1
            events["mc_cot_no_options"] += not shown

    # -- pieces -------------------------------------------------------------------------
    def option_list(self, view: PairView) -> tuple[str, str]:
        """The rendered options (with the text's header) and the answer in their labels."""
        opts = view.options or []
        order = [i for i in range(len(opts)) if i != view.none_index]
        self.rng.shuffle(order)
        texts = [opts[i] for i in order]
        answer_pos = order.index(view.answer_index) if view.answer_index in order else None
        if view.none_index is not None:  # "none of the above" goes last
            none = opts[view.none_index]
            if view.rename_none:
                none = self.per_text("none_of_the_above", options.NONE_OF_THE_ABOVE)
            texts.append(none)
            if answer_pos is None:
                answer_pos = len(texts) - 1
        kind, item, joiner, answer_format = self.per_text("opt_style", options.ITEM_STYLES)
        header = self.per_text("header", options.HEADERS)
        labels = _labels(kind, len(texts))
        listed = joiner.join(item.format(label=lab, option=o) for lab, o in zip(labels, texts))
        if header:
            listed = f"{header}{joiner if joiner == chr(10) else ' '}{listed}"
        answer = answer_format.format(label=labels[answer_pos], option=texts[answer_pos])
        return listed, answer

    def exercise(self, view: PairView) -> str:
        """One pair through its kind's pattern for this text (Classic and few-shot)."""
        pattern = self.kind_pattern(view.kind)
        if view.kind == "free":
            return pattern.format(question=view.question, answer=view.answer)
        if view.kind == "cot":
            return pattern.format(question=view.question, rationale=view.rationale, answer=view.answer)
        if view.kind == "options" and "{options}" not in pattern:
            self.count_mc(view, False)
            return pattern.format(question=view.question, answer=view.answer)
        self.count_mc(view, True)
        listed, answer = self.option_list(view)
        if view.kind == "options":
            return pattern.format(question=view.question, options=listed, answer=answer)
        return pattern.format(question=view.question, options=listed, rationale=view.rationale, answer=answer)

    def question_answer(self, view: PairView) -> tuple[str, str]:
        """A pair's question (with its options when this text shows them) and answer."""
        question, answer = view.question, view.answer
        if view.options is not None:
            shown = view.kind == "options_cot" or self.mc_shows_options()
            self.count_mc(view, shown)
            if shown:
                listed, answer = self.option_list(view)
                question = f"{question}\n{listed}"
        return question, answer

    def turn_texts(self, view: PairView) -> tuple[str, str]:
        """A pair as (question turn, answer turn) for dialogs and numbered lists."""
        question, answer = self.question_answer(view)
        if view.rationale is not None:
            answer = f"{view.rationale}\nSo the answer is: {answer}"
        return question, answer

    def document(self, text: str) -> str:
        return text if self.reading is None else self.reading.format(document=text)

    # -- modes --------------------------------------------------------------------------
    def classic(self, shot: Shot, invert: bool, bridge: str | None) -> str:
        exercises = "\n\n".join([self.exercise(v) for v in shot.pairs])
        if invert:
            return self.pick("inversion", reading.INVERSIONS).format(pairs=exercises, document=shot.text)
        self.stats.events["classic_shots"] += 1
        self.stats.events["classic_bare"] += self.reading is None
        head = self.document(shot.text)
        if bridge is not None:
            head = f"{head.rstrip()}\n\n{bridge}"
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
        intro = self.per_text("dialog_intro", dialog.INTROS)
        return f"{self.document(shot.text).rstrip()}\n\n{intro}\n{conversation}"

    def next_turn(self, shot: Shot, speakers: tuple[str, str], turn: str) -> str:
        lines = []
        last = len(shot.pairs) - 1
        for k, view in enumerate(shot.pairs):
            q, a = self.turn_texts(view)
            lines.append(turn.format(speaker=speakers[0], text=q))
            if k == last:
                lines.append(self.per_text("next_turn", dialog.NEXT_TURN_PROMPTS))
            lines.append(turn.format(speaker=speakers[1], text=a))
        intro = self.per_text("dialog_intro", dialog.INTROS)
        return f"{self.document(shot.text).rstrip()}\n\n{intro}\n" + "\n".join(lines)

    def numbered(self, shot: Shot, before: bool) -> str:
        q_label, a_label = self.per_text("numbering", numbering.STYLES)
        turns = [self.turn_texts(v) for v in shot.pairs]
        questions = "\n".join(q_label.format(n=k) + q for k, (q, _) in enumerate(turns, 1))
        answers = "\n".join(a_label.format(n=k) + a for k, (_, a) in enumerate(turns, 1))
        a_head = self.per_text("numbered_answers_header", numbering.ANSWER_HEADERS)
        a_block = f"{a_head}\n{answers}" if a_head else answers
        document = self.document(shot.text).rstrip()
        if before:  # the questions first, then the document, then the answers
            preview = self.per_text("numbered_preview", numbering.PREVIEW_HEADERS)
            return f"{preview}\n{questions}\n\n{document}\n\n{a_block}"
        q_head = self.per_text("numbered_questions_header", numbering.QUESTION_HEADERS)
        q_block = f"{q_head}\n{questions}" if q_head else questions
        return f"{document}\n\n{q_block}\n\n{a_block}"

    def fewshot(self, shot: Shot) -> str:
        examples = "\n\n".join(self.exercise(v) for v in shot.pairs[:-1])
        intro = self.per_text("fewshot_intro", fewshot.INTROS)
        test = self.per_text("fewshot_test", fewshot.TEST_PROMPTS)
        final = self.exercise(shot.pairs[-1])
        return f"{self.document(shot.text).rstrip()}\n\n{intro}\n\n{examples}\n\n{test}\n{final}"

    def fewshot_inline(self, shot: Shot) -> str:
        """Answer first, explanation after; the test item asks only for the answer."""
        intro, example, why, test = self.per_text("fewshot_inline", fewshot.INLINE)
        parts = []
        for view in shot.pairs[:-1]:
            question, answer = self.question_answer(view)
            part = example.format(question=question, answer=answer)
            if view.rationale is not None:
                part = f"{part}\n{why.format(rationale=view.rationale)}"
            parts.append(part)
        question, answer = self.question_answer(shot.pairs[-1])
        parts.append(test.format(question=question, answer=answer))
        return f"{self.document(shot.text).rstrip()}\n\n{intro}\n\n" + "\n\n".join(parts)


def text_seed(source_ids: Iterable[str], seed: int) -> int:
    """A text's seed: a stable hash of its documents' ids and the user's seed."""
    digest = hashlib.blake2b(f"{seed}\x1e{chr(31).join(source_ids)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def render_text(shots: list[Shot], seed: int, stats: TemplifyStats) -> AugmentedText:
    """One instruction-augmented text from linked shots (each with >= 1 usable pair)."""
    ids = tuple(s.id for s in shots)
    views = [v for s in shots for v in s.pairs]
    needs_options = any([v.needs_options for v in views])
    r = _Renderer(random.Random(text_seed(ids, seed)), stats, needs_options)
    names, weights = _MANY if min(len(s.pairs) for s in shots) >= 2 else _ONE
    mode = r.rng.choices(names, weights)[0]
    invert = mode in ("classic", "dialog") and r.rng.random() < INVERSION_RATE
    separator = r.pick("example_separator", separators.EXAMPLE_SEPARATORS) if len(shots) > 1 else ""
    speakers, turn = dialog.SPEAKERS[0], dialog.TURN_FORMATS[0]
    if mode in ("dialog", "next_turn"):
        speakers = r.pick("speakers", dialog.SPEAKERS)
        turn = r.pick("dialog_turn", dialog.TURN_FORMATS)
    if not invert and r.rng.random() >= BARE_RATE:
        r.reading = r.pick("reading", reading.READING_PROMPTS)
    bridge = None
    if mode == "classic" and not invert and r.rng.random() < BRIDGE_RATE:
        bridge = r.pick("bridge", reading.BRIDGES)
    layout = mode
    if mode == "numbered":
        layout = "numbered_before" if r.rng.random() < NUMBERED_BEFORE_RATE else "numbered_after"
    elif mode == "fewshot":
        layout = "fewshot_inline" if r.rng.random() < FEWSHOT_INLINE_RATE else "fewshot_exercises"
    parts = []
    for shot in shots:
        if mode == "classic":
            parts.append(r.classic(shot, invert, bridge))
        elif mode == "dialog":
            parts.append(r.dialog(shot, speakers, turn, invert))
        elif mode == "numbered":
            parts.append(r.numbered(shot, layout == "numbered_before"))
        elif layout == "fewshot_inline":
            parts.append(r.fewshot_inline(shot))
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
    events = stats.events
    events[f"layout.{layout}"] += 1
    kinds = [v.kind for v in views]
    per_kind = Counter(kinds)
    stats.kinds.update(kinds)  # a list: counted in C (a Counter argument is a Python loop)
    for kind, used in r.kind_ids.items():  # texts whose >= 2 pairs of a kind share one pattern
        if per_kind[kind] >= 2:
            events[f"multi.{kind}"] += 1
            events[f"consistent.{kind}"] += len(used) == 1
    stats.families.update(r.used)
    templates = tuple(r.ids)
    stats.templates.update(templates)
    return AugmentedText(ids[0], separator.join(parts), ids, len(shots), n_pairs, mode, templates)


def templify(
    records: Iterable[Entry | Mapping[str, Any]], seed: int = 0, stats: TemplifyStats | None = None
) -> Iterator[AugmentedText]:
    """Instruction-augmented texts from synthesize records (`Entry`s or their dict rows).

    Records are grouped into chains by `chain_id` (in order of first appearance) and
    ordered by `round`; texts come out chain by chain.
    """
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        raise UsageError(f"records must be a list (or iterable) of Entry objects or their dict rows, "
                         f"not one {type(records).__name__}")  # fmt: skip
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UsageError(f"seed must be an int, got {seed!r}")
    stats = stats if stats is not None else TemplifyStats()
    chains: dict[str, list[tuple[str, str, list[Pair], str, int, bool]]] = {}
    for record in records:
        row = entry_fields(record)
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
                yield raw_text(entry_id, text, stats)
                continue
            if current and not inherits:
                yield render_text(current, seed, stats)
                current = []
            current.append(Shot(entry_id, text, views))
        if current:
            yield render_text(current, seed, stats)
