"""Few-shot framing for templify.

Renders some instruction-response pairs as worked examples followed by a
final test item. ``INTROS`` are placeholder-free lines introducing the
worked examples, and ``TEST_PROMPTS`` are placeholder-free lines introducing
the final item to be answered.

``INLINE`` are the answer-first layouts: ``(intro, example, why, test)`` where ``intro`` is
placeholder-free, ``example`` and ``test`` use ``{question}`` then ``{answer}`` and ``why``
uses ``{rationale}``. Each worked example gives its answer first and, when it has one, the
explanation after it; the test item then asks only for the answer.
"""

INTROS: tuple[str, ...] = (
    "Here are some examples.",
    "Examples:",
    "Study these solved problems:",
    "Some worked examples:",
    "Here are a few examples with answers.",
    "Example questions and answers:",
    "Look at these examples first.",
    "Solved examples:",
    "Below are some demonstrations.",
    "Learn from the following examples:",
    "EXAMPLES",
    "Here is how similar questions were answered:",
    "A few sample questions, with answers:",
    "Practice examples:",
)

TEST_PROMPTS: tuple[str, ...] = (
    "Now answer this one:",
    "Your turn:",
    "Question to answer:",
    "Now, solve this:",
    "Now try this one.",
    "Test question:",
    "Answer the following in the same way:",
    "Next question:",
    "Here is a new one:",
    "Now it's your turn to answer:",
    "Apply the same approach to this:",
    "Final question:",
    "Now for the real question:",
    "TEST",
)

INLINE: tuple[tuple[str, str, str, str], ...] = (
    ("Follow the examples to solve a new instance of the task.",
     "{question}\nSolution: {answer}", "Why? {rationale}", "New input: {question}\nSolution: {answer}"),
    ("Given the example inputs and outputs, solve the new case.",
     "Example: {question}\nOutput: {answer}", "{rationale}", "New case: {question}\nOutput: {answer}"),
    ("Worked examples first, then one for you.",
     "Q: {question}\nA: {answer}", "Because: {rationale}", "Q: {question}\nA: {answer}"),
    ("See how these were answered.",
     "Problem: {question}\nAnswer: {answer}", "Explanation: {rationale}",
     "Problem: {question}\nAnswer: {answer}"),
    ("Study the solved examples below.",
     "Example input: {question}\nExample output: {answer}", "Example explanation: {rationale}",
     "Now solve this: {question}\nOutput: {answer}"),
    ("Here are some questions with answers and the reasons behind them.",
     "{question}\nThe answer: {answer}", "Reason: {rationale}", "{question}\nThe answer: {answer}"),
    ("Task examples:",
     "Input: {question}\nOutput: {answer}", "Rationale: {rationale}", "Input: {question}\nOutput: {answer}"),
    ("Part 1. Examples",
     "{question}\nAnswer: {answer}", "Explanation: {rationale}",
     "Part 2. Exercise\n{question}\nAnswer: {answer}"),
    ("Look at these examples, then answer the last question the same way.",
     "Question: {question}\nAnswer: {answer}", "Here is why: {rationale}",
     "Question: {question}\nAnswer: {answer}"),
    ("Answer first, explanation after:",
     "[Q] {question}\n[A] {answer}", "[Why] {rationale}", "[Q] {question}\n[A] {answer}"),
    ("Some solved items.",
     "Item: {question}\nSolution: {answer}", "Justification: {rationale}",
     "Your item: {question}\nSolution: {answer}"),
    ("Examples with short answers and their justifications:",
     "{question}\n=> {answer}", "(because {rationale})", "{question}\n=> {answer}"),
)  # fmt: skip
