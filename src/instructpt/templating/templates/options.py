"""Multiple-choice patterns, option layouts and "none of the above" phrasings for templify.

``PATTERNS`` render one multiple-choice pair. About half use ``{question}``, ``{options}``
and ``{answer}`` (in that order); the others use only ``{question}`` and ``{answer}``: the
option-free variants, in which the question is asked without its list and the answer is the
chosen option's text (as FLAN's option-free templates do). ``WITH_OPTIONS`` holds the indices
of the patterns that show the list.

``{options}`` is pre-rendered from one of ``HEADERS`` and one of ``ITEM_STYLES``, both drawn
once per text: ``(label_kind, item_format, joiner, answer_format)`` where ``label_kind`` is
"upper", "lower", "number", "roman", "ROMAN" or "none", the formats use ``{label}`` (labeled
kinds only) and ``{option}``, and ``joiner`` is "\\n" for one option per line or an inline
separator (" ", "; ", ", ", " | ", " / "). A header is followed by a newline for one-per-line
lists and by a space for inline lists; the empty header means no header.

``NONE_OF_THE_ABOVE`` are phrasings of an option that refers to the other options; an
unanswerable option written that way is listed last under a sampled phrasing.
``LIST_RELATIVE_MARKERS`` identify such options; ``TEXT_RELATIVE_MARKERS`` identify
"the text does not say" answers, which are kept in the synthesizer's own words.
"""

from __future__ import annotations

_SHOWN: tuple[str, ...] = (
    "{question}\n{options}\nAnswer: {answer}",
    "{question}\n{options}\n{answer}",
    "{question}\n\n{options}\n\nAnswer: {answer}",
    "{question} {options}\nAnswer: {answer}",
    "Question: {question}\n{options}\nAnswer: {answer}",
    "Q: {question}\n{options}\nA: {answer}",
    "{question}\n{options}\nThe answer is {answer}",
    "{question}\n{options}\nThe correct answer is {answer}.",
    "Multiple-choice question: {question}\n{options}\nAnswer: {answer}",
    "Answer the following multiple-choice question.\n{question}\n{options}\n{answer}",
    "{question}\n{options}\nCorrect option: {answer}",
    "{question}\n{options}\nMy pick: {answer}",
    "{question}\n{options}\nI think it is {answer}.",
    "Choose the right answer. {question}\n{options}\n{answer}",
    "QUESTION: {question}\n{options}\nANSWER: {answer}",
    "question: {question}\n{options}\nanswer: {answer}",
    "Problem: {question}\n{options}\nSolution: {answer}",
    "{question}\n{options}\n=> {answer}",
    "Quiz: {question}\n{options}\nKey: {answer}",
    "{question}\n{options}\nSelected: {answer}",
    "Read the question and pick the best option.\n\n{question}\n\n{options}\n\nBest option: {answer}",
    "{question}\n{options}\n\nThe right choice is {answer}",
    "Test question: {question}\n{options}\nCorrect answer: {answer}",
    "[Question] {question}\n{options}\n[Answer] {answer}",
    "Pick the correct option for this question: {question}\n{options}\nPicked: {answer}",
    "Input: {question}\n{options}\nOutput: {answer}",
    "{question}\n{options}\nWhich one is right? {answer}",
    "Select the best answer.\nQ: {question}\n{options}\nA: {answer}",
)

_FREE: tuple[str, ...] = (
    "{question}\nAnswer: {answer}",
    "Q: {question}\nA: {answer}",
    "Question: {question}\nAnswer: {answer}",
    "{question}\n{answer}",
    "{question}\n\n{answer}",
    "{question} {answer}",
    "{question}\nThe answer is {answer}.",
    "{question}\nThe answer: {answer}",
    "Answer this question: {question}\n{answer}",
    "QUESTION: {question}\nANSWER: {answer}",
    "question: {question}\nanswer: {answer}",
    "Problem: {question}\nSolution: {answer}",
    "{question}\nShort answer: {answer}",
    "Input: {question}\nOutput: {answer}",
    "{question}\n=> {answer}",
    "[Question] {question}\n[Answer] {answer}",
    "Quiz: {question}\nKey: {answer}",
    "Answer briefly. {question}\n{answer}",
    "{question}\nMy answer: {answer}",
    "What is the answer to this question? {question}\n{answer}",
    "Q. {question}\nA. {answer}",
    "Please answer: {question}\n\n{answer}",
    "{question}\nCorrect answer: {answer}",
    "Test question: {question}\nAnswer: {answer}",
    "{question} (answer in a few words)\n{answer}",
    "{question}\nResponse: {answer}",
)

PATTERNS: tuple[str, ...] = _SHOWN + _FREE
WITH_OPTIONS: tuple[int, ...] = tuple(range(len(_SHOWN)))

HEADERS: tuple[str, ...] = (
    "",
    "Options:",
    "OPTIONS:",
    "Choices:",
    "Choose from:",
    "Pick one:",
    "Possible answers:",
    "Available choices:",
    "Select from:",
    "Answer choices:",
    "Pick from:",
    "Your options are:",
    "Candidates:",
    "Choose one:",
    "Options are:",
    "The options are:",
    "Select one of the following:",
    "choices:",
    "Pick your answer from:",
    "Possible answers are:",
)

_LABEL_FORMATS = (
    "{label}.", "({label})", "{label})", "[{label}]", "{label}:", "{label} -", "({label}).", "<{label}>"
)  # fmt: skip
_LABEL_KINDS = ("upper", "lower", "number", "roman", "ROMAN")
_BULLETS = ("- ", "* ", "+ ", "• ", "-- ", "[-] ", "> ", "o ")
_INLINE_PLAIN = (", ", "; ", " | ", " / ")


def _item_styles() -> tuple[tuple[str, str, str, str], ...]:
    styles: list[tuple[str, str, str, str]] = []
    for joiner in ("\n", " ", "; "):
        kinds = _LABEL_KINDS if joiner != "; " else ("upper", "number")
        for kind in kinds:
            for k, fmt in enumerate(_LABEL_FORMATS):
                # answer: the bare label, or the label as listed followed by the option's text
                answer = "{label}" if (k + len(styles)) % 2 == 0 else fmt + " {option}"
                styles.append((kind, fmt + " {option}", joiner, answer))
    styles += [("none", bullet + "{option}", "\n", "{option}") for bullet in _BULLETS]
    styles += [("none", "{option}", joiner, "{option}") for joiner in _INLINE_PLAIN]
    return tuple(styles)


ITEM_STYLES: tuple[tuple[str, str, str, str], ...] = _item_styles()

NONE_OF_THE_ABOVE: tuple[str, ...] = (
    "None of the above",
    "None of the above choices",
    "None of these",
    "none of the options",
    "None of the given options",
    "None of the listed answers",
    "No correct answer is given",
    "None of the choices is correct",
    "Neither of the options above",
    "None of the listed options",
    "No option is correct",
    "None of these answers",
)

LIST_RELATIVE_MARKERS: tuple[str, ...] = (
    "none of the above",
    "none of the above choices",
    "none of these",
    "none of the options",
    "none of the given options",
    "none of the listed answers",
    "none of the listed options",
    "none of the choices",
    "no correct answer",
    "no correct answer is given",
)

TEXT_RELATIVE_MARKERS: tuple[str, ...] = (
    "not enough information",
    "cannot be determined",
    "can't be determined",
    "unanswerable",
    "not mentioned",
    "the text does not say",
    "it cannot be determined from the text",
    "not enough information to tell",
    "the answer is not mentioned",
)

UNANSWERABLE_MARKERS: tuple[str, ...] = LIST_RELATIVE_MARKERS + TEXT_RELATIVE_MARKERS
