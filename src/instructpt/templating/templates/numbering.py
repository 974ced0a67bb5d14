"""Numbered-list framing for templify.

Renders several instruction-response pairs as a numbered list of questions
followed by a numbered list of answers. ``STYLES`` are
(question_label, answer_label) pairs, each containing the ``str.format``
placeholder ``{n}`` (1, 2, 3, ...) exactly once. ``QUESTION_HEADERS`` and
``ANSWER_HEADERS`` are placeholder-free headers placed before the numbered
questions and the numbered answers respectively (an empty header means no
header line). ``PREVIEW_HEADERS`` introduce the numbered questions when they come *before*
the document (read the questions, then the text, then the answers).
"""

STYLES: tuple[tuple[str, str], ...] = (
    ("{n}. ", "{n}. "),
    ("Q{n}: ", "A{n}: "),
    ("Question {n}: ", "Answer {n}: "),
    ("({n}) ", "({n}) "),
    ("{n}) ", "{n}) "),
    ("#{n} ", "#{n} "),
    ("[{n}] ", "[{n}] "),
    ("Problem {n}. ", "Solution {n}. "),
    ("Q{n}. ", "A{n}. "),
    ("Q{n}) ", "A{n}) "),
    ("Question {n}. ", "Answer {n}. "),
    ("QUESTION {n}: ", "ANSWER {n}: "),
    ("Exercise {n}: ", "Exercise {n}: "),
    ("Task {n}: ", "Response {n}: "),
    ("{n}: ", "{n}: "),
    ("{n} - ", "{n} - "),
    ("No. {n} ", "No. {n} "),
    ("Item {n}: ", "Item {n}: "),
    ("Q #{n}: ", "A #{n}: "),
    ("Question #{n} ", "Answer #{n} "),
    ("{n}.) ", "{n}.) "),
    ("Part {n}: ", "Part {n}: "),
    ("Quiz {n}: ", "Key {n}: "),
    ("[Q{n}] ", "[A{n}] "),
)

QUESTION_HEADERS: tuple[str, ...] = (
    "Questions:",
    "Answer the following questions:",
    "Quiz:",
    "Exercises:",
    "",
    "QUESTIONS",
    "Please answer these questions:",
    "Here are some questions:",
    "Test yourself:",
    "Practice questions:",
    "Try answering the following.",
    "Tasks:",
    "Review questions:",
    "Questions to consider:",
)

ANSWER_HEADERS: tuple[str, ...] = (
    "Answers:",
    "Answer key:",
    "Solutions:",
    "Here are the answers:",
    "ANSWERS",
    "Responses:",
    "The answers are as follows.",
    "Key:",
    "Answers to the questions above:",
    "Suggested answers:",
    "Solutions to the exercises:",
    "Correct answers:",
    "My answers:",
    "Check your answers:",
)

PREVIEW_HEADERS: tuple[str, ...] = (
    "Read the questions first, then the passage, and answer them.",
    "Keep these questions in mind as you read:",
    "Questions to answer after reading the text below:",
    "Before reading, look at these questions.",
    "You will answer these questions about the text that follows:",
    "First the questions, then the article:",
    "Preview questions:",
    "Read the text below to answer these questions.",
    "Questions (the passage follows):",
    "Think about these questions while reading:",
    "Answer the following questions using the passage after them.",
    "QUESTIONS FIRST",
)
