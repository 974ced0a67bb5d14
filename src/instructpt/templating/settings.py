"""`TemplifySettings`: `run` YAML's `templify:` section and `instructpt templify`'s flags
(re-exported by `stage_settings.py` and `config.py`). Its own module, importing only the
templify stage, so that the command starts without loading the other stages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..settings_base import Strict, default_of
from .stage import run_templify


class TemplifySettings(Strict):
    seed: int = Field(
        default_of(run_templify, "seed"),
        description="Changes every text's template draws; the same seed gives the same bytes.",
    )
    format: Literal["parquet", "jsonl"] = Field(default_of(run_templify, "fmt"),
                                                description="Format of the text shards.")  # fmt: skip
