"""Separators between shots for templify.

``EXAMPLE_SEPARATORS`` are placeholder-free strings placed between the shots
(whole documents with their exercises) that make up one instruction-augmented
text. Unlike other template strings, they intentionally begin and end with
whitespace.
"""

EXAMPLE_SEPARATORS: tuple[str, ...] = (
    "\n\n",
    "\n\n\n",
    "\n\n---\n\n",
    "\n\n***\n\n",
    "\n\n\n\n",
    "\n\n###\n\n",
    "\n\n* * *\n\n",
    "\n\n===\n\n",
    "\n\n~~~\n\n",
    "\n\nNext example:\n\n",
    "\n\n--\n\n",
    "\n\n§\n\n",
    "\n\n* * * * *\n\n",
    "\n\n----------\n\n",
    "\n\nAnother example:\n\n",
)
