"""Dialog framing for templify.

Renders instruction-response pairs as a conversation about the document.
``SPEAKERS`` are (asker, answerer) name pairs. ``TURN_FORMATS`` format one
turn and use the ``str.format`` placeholders ``{speaker}`` and ``{text}``
exactly once each. ``INTROS`` are placeholder-free lines introducing the
conversation, and ``NEXT_TURN_PROMPTS`` are placeholder-free instructions
asking for the next turn of the conversation.
"""

SPEAKERS: tuple[tuple[str, str], ...] = (
    ("User", "Assistant"),
    ("Q", "A"),
    ("Student", "Teacher"),
    ("Human", "AI"),
    ("Person A", "Person B"),
    ("Interviewer", "Expert"),
    ("Customer", "Agent"),
    ("Reader", "Author"),
    ("Alice", "Bob"),
    ("[Q]", "[A]"),
    ("Questioner", "Responder"),
    ("USER", "ASSISTANT"),
    ("Speaker 1", "Speaker 2"),
    ("Pupil", "Tutor"),
    ("Learner", "Instructor"),
    ("Journalist", "Specialist"),
    ("Client", "Consultant"),
    ("Visitor", "Guide"),
    ("Patient", "Doctor"),
    ("Host", "Guest"),
    ("Kid", "Parent"),
    ("Maria", "John"),
    ("Sam", "Priya"),
    ("Me", "You"),
    ("Asker", "Answerer"),
    ("Caller", "Operator"),
)

TURN_FORMATS: tuple[str, ...] = (
    "{speaker}: {text}",
    "{speaker} said: {text}",
    "[{speaker}] {text}",
    "{speaker} — {text}",
    "**{speaker}:** {text}",
    "{speaker}:\n{text}",
    "{speaker} >> {text}",
    "<{speaker}> {text}",
    "{speaker} says: {text}",
    "- {speaker}: {text}",
    '{speaker}: "{text}"',
)

INTROS: tuple[str, ...] = (
    "The following is a conversation about the text above.",
    "Here's a dialog about the article:",
    "Chat log:",
    "Conversation:",
    "Dialogue about the passage:",
    "Two people discuss the text.",
    "Below is a chat about the article above.",
    "A discussion of the passage follows.",
    "Transcript:",
    "Here is an exchange about what we just read.",
    "They talked about the article:",
    "Read the following conversation about the text.",
    "Q&A session about the passage:",
    "A short interview based on the text:",
    "DIALOG",
)

NEXT_TURN_PROMPTS: tuple[str, ...] = (
    "Continue the conversation.",
    "What is the next turn in this dialog?",
    "Write the next response:",
    "Respond to the last message.",
    "Reply to the last question.",
    "What comes next in the conversation?",
    "Generate the next turn.",
    "Write the next line of dialogue.",
    "How should the answerer respond?",
    "Complete the dialog.",
    "Give the reply to the last message.",
    "Provide the next utterance.",
    "What would be a good response?",
    "Continue the chat:",
    "Next turn:",
    "Please continue this dialogue.",
    "Answer the last question in the conversation.",
)
