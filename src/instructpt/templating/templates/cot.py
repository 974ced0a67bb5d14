"""Chain-of-thought patterns for templify.

``PATTERNS`` render a free-form instruction-response pair whose response
carries a rationale; each uses the ``str.format`` placeholders
``{question}``, ``{rationale}`` and ``{answer}`` exactly once, in that order.
``OPTIONS_PATTERNS`` do the same for multiple-choice pairs and use
``{question}``, ``{options}``, ``{rationale}`` and ``{answer}`` exactly once,
in that order, where ``{options}`` is a pre-rendered multi-line list of the
choices together with its header (drawn once per text), so these patterns carry no header of
their own. Both lists are hand-written patterns followed by ones composed from parts: a
question lead-in x a reasoning lead-in x an answer cue, one per line.
"""

_WRITTEN: tuple[str, ...] = (
    "{question} Let's think step by step.\n{rationale}\nTherefore, the answer is {answer}.",
    "Q: {question}\nReasoning: {rationale}\nA: {answer}",
    "{question}\nStep-by-step reasoning: {rationale}\nSo the final answer is {answer}",
    "Question: {question}\nLet's reason: {rationale} The answer: {answer}",
    "{question} Think carefully first, then make a decision: {rationale} So, the answer is {answer}.",
    "{question}\nStream of consciousness: {rationale}\nThe answer is {answer}.",
    "{question}\nExplanation: {rationale}\nAnswer: {answer}",
    "{question}\nMy thoughts: {rationale}\nFinal answer: {answer}",
    "Problem: {question}\nSolution: {rationale}\nAnswer: {answer}",
    "Question: {question}\nAnswer: {rationale} So the answer is {answer}.",
    "Q: {question}\nA: {rationale} The answer is {answer}.",
    "Q: {question}\nA: Let's think. {rationale} Thus, the answer is {answer}.",
    "{question}\n\n{rationale}\n\nSo the answer is: {answer}",
    "{question}\n{rationale}\nAnswer: {answer}",
    "{question}\n{rationale} Hence {answer}.",
    "{question}\n{rationale} Therefore: {answer}",
    "{question} {rationale} The answer is {answer}.",
    "{question}\nLet's work through it. {rationale}\nResult: {answer}",
    "{question}\nLet's break this down. {rationale}\nConclusion: {answer}",
    "{question}\nWorking: {rationale}\nAnswer: {answer}",
    "{question}\nRationale: {rationale}\nAnswer: {answer}",
    "{question}\nReasoning:\n{rationale}\nAnswer:\n{answer}",
    "{question}\nThought process: {rationale}\nSo: {answer}",
    "{question}\nThinking out loud: {rationale}\nOkay, so the answer is {answer}.",
    "{question}\nHmm, let me think. {rationale}\nI'd say {answer}.",
    "{question}\nFirst, some reasoning. {rationale}\nThen the answer: {answer}",
    "{question}\nHere is my reasoning: {rationale}\nMy answer: {answer}",
    "{question}\nDetailed explanation: {rationale}\nShort answer: {answer}",
    "{question}\nExplain, then answer.\n{rationale}\n{answer}",
    "Answer the question and explain your reasoning.\n{question}\n{rationale}\nAnswer: {answer}",
    "Think through this problem: {question}\n{rationale}\nFinal answer: {answer}",
    "Solve this step by step: {question}\n{rationale}\nThe solution is {answer}.",
    "Reason about the following question. {question}\n{rationale}\nAnswer: {answer}",
    "Let's answer this carefully. {question}\n{rationale}\nSo, {answer}.",
    "Question: {question}\nStep by step: {rationale}\nAnswer: {answer}",
    "Question: {question}\nExplanation: {rationale}\nAnswer: {answer}",
    "Question:\n{question}\n\nReasoning:\n{rationale}\n\nAnswer:\n{answer}",
    "QUESTION: {question}\nREASONING: {rationale}\nANSWER: {answer}",
    "question: {question}\nthoughts: {rationale}\nanswer: {answer}",
    "Q: {question}\nLet me explain. {rationale}\nSo the answer is {answer}",
    "Q: {question}\nChain of thought: {rationale}\nA: {answer}",
    "[Question] {question}\n[Reasoning] {rationale}\n[Answer] {answer}",
    "Input: {question}\nReasoning: {rationale}\nOutput: {answer}",
    "Task: {question}\nApproach: {rationale}\nResult: {answer}",
    "Exercise: {question}\nWorked solution: {rationale}\nAnswer: {answer}",
    "Puzzle: {question}\nHow to solve it: {rationale}\nSolution: {answer}",
    "{question}\nLet's see... {rationale}\nThat gives us {answer}.",
    "{question}\nTo answer this, note that {rationale}\nThe answer, then, is {answer}.",
    "{question}\nWe know that {rationale}\nTherefore the answer is {answer}.",
    "{question}\nConsider the following: {rationale}\nIn conclusion, {answer}.",
    "{question}\nWhy? {rationale}\nSo: {answer}",
    "{question}\nJustification: {rationale}\nAnswer: {answer}",
    "{question}\nEvidence: {rationale}\nVerdict: {answer}",
    "{question}\nAnalysis: {rationale}\nConclusion: {answer}",
    "{question}\n--\n{rationale}\n--\n{answer}",
    "{question}\n\nStep-by-step:\n{rationale}\n\nFinal answer: {answer}",
    "{question}\nI'll reason it out. {rationale}\nMy final answer is {answer}.",
    "{question}\nGive the rationale and then the answer.\n{rationale}\n{answer}",
    "{question}\nFirst think, then answer.\nThinking: {rationale}\nAnswer: {answer}",
    "{question} Explain your answer.\n{rationale} The answer is {answer}.",
    "{question} Show your work.\n{rationale}\nAnswer: {answer}",
    "{question} Justify your response.\n{rationale}\nResponse: {answer}",
    "{question} Please reason it out before answering.\n{rationale}\nSo my answer is: {answer}",
    "Here is a question that needs some thought: {question}\n{rationale}\nThus: {answer}",
    "Consider this question: {question}\nA careful look: {rationale}\nTherefore, {answer}.",
    'Given the question "{question}", we reason: {rationale} Hence the answer is "{answer}".',
    "The question is: {question}\nThe reasoning is: {rationale}\nThe answer is: {answer}",
    "{question}\nLet's think about it. {rationale} So the answer must be {answer}.",
    "{question}\nReasoning and answer: {rationale}\nThe answer: {answer}",
)

_QUESTIONS: tuple[str, ...] = (
    "{question}",
    "Q: {question}",
    "Question: {question}",
    "Problem: {question}",
    "{question} Let's think step by step.",
    "{question} Think it through before answering.",
    "Work it out: {question}",
    "{question} Explain your reasoning.",
)
_RATIONALES: tuple[str, ...] = (
    "{rationale}",
    "Reasoning: {rationale}",
    "Let's think. {rationale}",
    "Step by step: {rationale}",
    "Explanation: {rationale}",
    "My reasoning: {rationale}",
    "Thoughts: {rationale}",
)
_ANSWERS: tuple[str, ...] = (
    "So the answer is {answer}.",
    "Answer: {answer}",
    "Therefore, the answer is {answer}.",
    "The final answer: {answer}",
    "Hence, {answer}.",
    "So: {answer}",
)

PATTERNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        _WRITTEN + tuple(f"{q}\n{r}\n{a}" for q in _QUESTIONS for r in _RATIONALES for a in _ANSWERS)
    )
)

_OPTIONS_WRITTEN: tuple[str, ...] = (
    "{question}\n{options}\nLet's think step by step. {rationale}\nThe answer is {answer}.",
    "{question}\n{options}\n{rationale} So the answer is {answer}.",
    "Choose the best answer and explain why.\n{question}\n{options}\n{rationale}\nBest answer: {answer}",
    "{question}\n\n{options}\n\nStep-by-step reasoning:\n{rationale}\n\nFinal answer: {answer}",
    "Question:\n{question}\n\n{options}\n\nReasoning:\n{rationale}\n\nAnswer:\n{answer}",
    "Multiple choice: {question}\n{options}\nThinking: {rationale}\nChoice: {answer}",
    "{question}\n{options}\nLet me think. {rationale}\nI'd go with {answer}.",
    "{question} {options}\nWhy: {rationale}\nAnswer: {answer}",
    "{question}\n{options}\nThink carefully first, then decide: {rationale} So, the answer is {answer}.",
    "Q: {question}\n{options}\nA: {rationale} The answer is {answer}.",
    "{question}\n{options}\n[Reasoning] {rationale}\n[Answer] {answer}",
    "Read the question and the options, reason, then answer.\n{question}\n{options}\n{rationale}\n{answer}",
    "Quiz: {question}\n{options}\nExplanation: {rationale}\nKey: {answer}",
    "{question}\n{options}\nHmm. {rationale}\nI think the answer is {answer}.",
    "{question}\n{options}\nEvidence: {rationale}\nVerdict: {answer}",
)
_OPTIONS_QUESTIONS: tuple[str, ...] = (
    "{question}\n{options}",
    "Q: {question}\n{options}",
    "Question: {question}\n{options}",
    "Problem: {question}\n{options}",
    "{question}\n{options}\nLet's think step by step.",
    "{question}\n{options}\nExplain your choice.",
    "Pick the right option. {question}\n{options}",
)
_OPTIONS_ANSWERS: tuple[str, ...] = (
    "So the answer is {answer}.",
    "Answer: {answer}",
    "Therefore, the answer is {answer}.",
    "The correct option: {answer}",
    "Hence, {answer}.",
    "My choice: {answer}",
)

OPTIONS_PATTERNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        _OPTIONS_WRITTEN
        + tuple(
            f"{q}\n{r}\n{a}" for q in _OPTIONS_QUESTIONS for r in _RATIONALES[:6] for a in _OPTIONS_ANSWERS
        )
    )
)
