"""The fast parser against a plain, rule-by-rule reading of docs/method.md §2.

`parse_generation` is tuned for speed (benchmarks/parse_speed.py); `spec_parse` below is the
same rules written the obvious way. Both must keep the same pairs and count the same drops,
in the same order, on any input.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import example, given, settings
from hypothesis import strategies as st

from instructpt.synthesis import format as F
from instructpt.synthesis.format import ANS, END, EOS, QUE, Pair, parse_generation


def spec_parse(generation: str) -> tuple[list[Pair], Counter[str]]:
    dropped: Counter[str] = Counter()
    body = generation.rstrip()
    while body.endswith(EOS):
        body = body[: -len(EOS)].rstrip()
    *fragments, last = body.split(END)
    if last.strip():
        dropped[F.DROP_UNFINISHED] += 1
    pairs, seen = [], set()
    for fragment in fragments:
        n_ans = fragment.count(ANS)
        if n_ans != 1:
            dropped[F.DROP_NO_ANS if n_ans == 0 else F.DROP_MULTIPLE_ANS] += 1
            continue
        before, after = (part.strip() for part in fragment.split(ANS))
        if not before.startswith(QUE):
            dropped[F.DROP_NO_QUE] += 1
        elif QUE in (instruction := before[len(QUE) :].strip()):
            dropped[F.DROP_MULTIPLE_QUE] += 1
        elif not after:
            dropped[F.DROP_EMPTY_RESPONSE] += 1
        elif instruction.casefold() in seen:
            dropped[F.DROP_DUPLICATE] += 1
        else:
            seen.add(instruction.casefold())
            pairs.append(Pair(instruction, after))
    return pairs, dropped


PIECES = [QUE, ANS, END, EOS, "<s>", "\n\n", " ", "\u00a0", "ß", "SS", "Q", "a", "?", "\x1c"]


_pieces = st.sampled_from(PIECES)
_generations = st.lists(_pieces | _pieces | st.text(max_size=6), max_size=40).map("".join)


@settings(max_examples=1000)
@given(_generations)
@example("<QUE> a <ANS> b <ANS></END>")
@example("<QUE> <QUE> q <ANS> a </END>")
@example("<QUE> a <ANS> b </END>\n\n<QUE> A <ANS> c </END></s> </s>")
def test_parse_generation_equals_the_rules(generation):
    result = parse_generation(generation)
    pairs, dropped = spec_parse(generation)
    assert result.pairs == pairs
    assert list(result.dropped.items()) == list(dropped.items())  # same counts, same order


def test_dropped_is_a_working_counter():
    result = parse_generation("<QUE> a <ANS> b </END>")
    assert result.dropped == Counter() and isinstance(result.dropped, Counter)
    result.dropped["x"] += 2
    assert result.dropped.most_common(1) == [("x", 2)] and result.dropped.total() == 2
