"""Few-shot framing for templify.

Renders some instruction-response pairs as worked examples followed by a
final test item. ``INTROS`` are placeholder-free lines introducing the
worked examples, and ``TEST_PROMPTS`` are placeholder-free lines introducing
the final item to be answered.
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
