"""Free-form question/answer patterns for templify.

Each pattern renders one instruction-response pair as natural text. Every
pattern uses the ``str.format`` placeholders ``{question}`` and ``{answer}``
exactly once each, with the question appearing before the answer. The
patterns vary prefixes, separators, casing, punctuation and newline layout
so that rendered texts do not share a single surface form. ``PATTERNS`` is the
hand-written list followed by labeled pairs composed with answer separators.
"""

_WRITTEN: tuple[str, ...] = (
    "Q: {question}\nA: {answer}",
    "Question: {question}\nAnswer: {answer}",
    "{question}\n\n{answer}",
    "{question}\n{answer}",
    "Answer the following question: {question}\n{answer}",
    "Q: {question} A: {answer}",
    "{question}\nThe answer is: {answer}",
    "Please answer this: {question}\n\n{answer}",
    "Question: {question}\nAnswer:\n{answer}",
    "Problem: {question}\nSolution: {answer}",
    "Read the question and give an answer.\n{question}\nResponse: {answer}",
    "QUESTION: {question}\nANSWER: {answer}",
    "question: {question}\nanswer: {answer}",
    "Q. {question}\nA. {answer}",
    "Q - {question}\nA - {answer}",
    "Question - {question}\nAnswer - {answer}",
    "{question} {answer}",
    "{question}\nAnswer: {answer}",
    "{question}\nA: {answer}",
    "{question}\n\nAnswer: {answer}",
    "{question}\nResponse:\n{answer}",
    "Input: {question}\nOutput: {answer}",
    "Instruction: {question}\nResponse: {answer}",
    "### Instruction:\n{question}\n\n### Response:\n{answer}",
    "Query: {question}\nReply: {answer}",
    "Ask: {question}\nAnswer: {answer}",
    "Here is a question: {question}\nHere is the answer: {answer}",
    "Try to answer this question: {question}\n\n{answer}",
    "Answer this question.\n\n{question}\n\n{answer}",
    "Can you answer this? {question}\n\n{answer}",
    "I have a question: {question}\nSure. {answer}",
    "{question}\nWhat is the answer?\n{answer}",
    "{question} What's the answer?\n{answer}",
    "Respond to the following.\n{question}\n{answer}",
    "Give a short answer to this question: {question}\nAnswer: {answer}",
    "Answer briefly. {question}\n{answer}",
    "Write an answer to the question below.\n\nQuestion: {question}\n\nAnswer: {answer}",
    "Consider the question: {question}\nA good answer would be: {answer}",
    "Question:\n{question}\n\nAnswer:\n{answer}",
    "Q:\n{question}\n\nA:\n{answer}",
    "[Q] {question}\n[A] {answer}",
    "Q >> {question}\nA >> {answer}",
    "Task: {question}\nSolution: {answer}",
    "Exercise: {question}\nAnswer: {answer}",
    "Problem:\n{question}\n\nSolution:\n{answer}",
    "{question}\n--\n{answer}",
    "{question}\n=> {answer}",
    "{question}\nMy answer: {answer}",
    "{question}\nThe answer to this question is: {answer}",
    "Quick question: {question}\nQuick answer: {answer}",
    "Here's a question for you. {question}\nAnswer: {answer}",
    "Determine the answer to this question.\n{question}\nAnswer: {answer}",
    "Please respond to the following: {question}\n\nResponse: {answer}",
    "Think about this question: {question}\nAnswer it: {answer}",
    'Given the question "{question}", the answer is "{answer}".',
    'Question: "{question}"\nAnswer: "{answer}"',
    "The question is: {question}\nThe answer is: {answer}",
    "What is the answer to this question? {question}\n\n{answer}",
    "Answer the question below:\n{question}\n\n{answer}",
    "Answer using the text. {question}\nAnswer: {answer}",
    "Based on the text, answer: {question}\n{answer}",
    "{question}\n\nAnswer the question above.\n{answer}",
    "{question} (answer below)\n{answer}",
    "Request: {question}\nResult: {answer}",
    "Prompt: {question}\nCompletion: {answer}",
)

# Labeled question/answer pairs x separators between them (duplicates of the list above dropped).
_LABELS: tuple[tuple[str, str], ...] = (
    ("Q: ", "A: "),
    ("Question: ", "Answer: "),
    ("Problem: ", "Solution: "),
    ("Input: ", "Output: "),
    ("Query: ", "Reply: "),
    ("QUESTION: ", "ANSWER: "),
    ("question: ", "answer: "),
    ("In: ", "Out: "),
    ("Question:\n", "Answer:\n"),
    ("Q. ", "A. "),
    ("Ask: ", "Answer: "),
    ("Task: ", "Response: "),
)
_SEPARATORS: tuple[str, ...] = ("\n", "\n\n", " ", "\n---\n")

PATTERNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        _WRITTEN
        + tuple(
            f"{q}{{question}}{sep}{a}{{answer}}"
            for q, a in _LABELS
            for sep in _SEPARATORS
            if not (q.endswith("\n") and sep == " ")
        )
    )
)
