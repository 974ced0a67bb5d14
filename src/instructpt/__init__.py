"""instructpt: Instruction Pre-Training end to end (Cheng et al., EMNLP 2024).

The core (this package without its engines) imports no torch: formats, rounds,
corpus I/O and the pipeline run anywhere; model backends load lazily.
"""

__version__ = "0.1.0"

from .engines.base import Completion, Engine, Request  # noqa: E402
from .engines.function import FunctionEngine, from_function  # noqa: E402
from .engines.registry import EngineOptions, create_engine, register_engine  # noqa: E402
from .errors import UsageError  # noqa: E402
from .format import Pair, build_prompt, parse_generation, parse_pairs, serialize_example  # noqa: E402
from .pipeline import SynthesisConfig, run_synthesis, synthesize  # noqa: E402
from .records import Document, Entry, Reject  # noqa: E402
from .rounds import RoundSettings, synthesize_batch  # noqa: E402
from .templify import AugmentedText, templify  # noqa: E402
from .tokenization import Tokenizer, load_tokenizer  # noqa: E402

__all__ = [
    "AugmentedText", "Completion", "Document", "Engine", "EngineOptions", "Entry", "FunctionEngine", "Pair",
    "Reject", "Request", "RoundSettings", "SynthesisConfig", "Tokenizer", "UsageError",
    "build_prompt", "create_engine", "from_function", "load_tokenizer", "parse_generation",
    "parse_pairs", "register_engine", "run_synthesis", "serialize_example", "synthesize",
    "synthesize_batch", "templify",
]  # fmt: skip
