"""Data quality between synthesize and templify: benchmark decontamination (hashed word n-grams of
evaluation sets) and pair filters, run as the `decontaminate` stage."""

from .decontaminate import DecontaminateOptions, build_index, run_decontaminate
from .filters import FilterSettings
from .ngrams import NgramIndex, tokens

__all__ = [
    "DecontaminateOptions",
    "FilterSettings",
    "NgramIndex",
    "build_index",
    "run_decontaminate",
    "tokens",
]
