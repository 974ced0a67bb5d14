"""The hf engine's continuous batching: one transformers manager for the engine's life.

`model.generate_batch` builds a new `ContinuousBatchingManager` on every call (paged KV cache,
a worker thread; on a GPU, CUDA-graph capture), about 2.3 s on CPU even with a tiny model, and
synthesis calls `generate` once per round per shard. `ContinuousBatcher` builds the manager
once, on first use, and feeds it every call's requests under ids unique for its life; `close`
stops it (the engine's `close`). Each request carries its own `max_new_tokens` and EOS.

Several threads may call `run` at once (`Engine.agenerate` runs `generate` in worker threads):
requests are added under a lock, and whichever thread takes a result from the manager's one
output queue files it under its id, where its caller finds it. A manager whose worker thread
died is dropped, and the next call builds a new one.

Cache size: on CPU transformers would zero-fill 60% of the machine's RAM (mostly attention
masks) for as long as the manager lives, so there the KV cache holds the engine's
`max_batch_tokens` tokens (at least one `max_model_len` sequence) and a step at most 2,048
tokens; on a GPU transformers sizes it from free memory, as `generate_batch` did.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Sequence
from math import ceil
from typing import Any

from ..errors import UsageError

CPU_STEP_TOKENS = 2048  # tokens in one forward step on CPU: more only grows the attention masks
POLL_SECONDS = 0.1  # how often a waiting caller checks that the worker thread is alive
STOP_SECONDS = 30.0  # how long close() waits for the worker thread


class ContinuousBatcher:
    """One started `ContinuousBatchingManager` for `model`, shared by every call."""

    def __init__(self, model: Any, pad_id: int, max_model_len: int, cache_tokens: int | None) -> None:
        self.model = model
        self.pad_id = pad_id
        self.max_model_len = max_model_len
        self.cache_tokens = cache_tokens  # None: transformers sizes the cache from free memory
        self.manager: Any = None
        self._lock = threading.Lock()  # the manager's life, adding requests, `_results`
        self._results: dict[str, Any] = {}  # finished outputs taken off the queue, by request id
        self._ids = itertools.count()

    def run(self, prompts: Sequence[tuple[list[int], int]], eos_id: int) -> list[Any | None]:
        """The finished `GenerationOutput` of each (prompt ids, max new tokens), in order; None
        for a request the worker thread never answered (it died). `eos_id` -1: never stop."""
        with self._lock:
            manager = self._started()
            ids = [f"instructpt-{next(self._ids)}" for _ in prompts]
            for rid, (prompt, max_new) in zip(ids, prompts):
                added = manager.add_request(list(prompt), request_id=rid, max_new_tokens=max_new,
                                            eos_token_id=eos_id)  # fmt: skip
                if added is None:  # the manager is stopping: it dropped the request
                    self._drop(manager)
                    return [self._results.pop(i, None) for i in ids]
        while True:
            with self._lock:
                if all(i in self._results for i in ids):
                    return [self._results.pop(i) for i in ids]
            result = manager.get_result(timeout=POLL_SECONDS)
            if result is not None:
                if result.is_finished():
                    with self._lock:
                        self._results[result.request_id] = result
            elif not manager.is_running():  # the worker thread ended: nothing more will come
                with self._lock:
                    self._drop(manager)
                    return [self._results.pop(i, None) for i in ids]

    def close(self) -> None:
        """Stop the manager (its thread, cache and attention switch); a later `run` starts anew."""
        with self._lock:
            if self.manager is not None:
                self._drop(self.manager)

    def _started(self) -> Any:
        """The running manager, built and started on first use (under `_lock`)."""
        if self.manager is not None:
            if self.manager.is_running():
                return self.manager
            self._drop(self.manager)
        try:
            from transformers import ContinuousBatchingConfig, GenerationConfig
            from transformers.generation.continuous_batching.utils import WorkloadHints
        except ImportError:
            import transformers

            raise UsageError(
                "the hf engine's continuous_batching needs a newer transformers (5.24 is tested); "
                f"this one is {transformers.__version__}"
            ) from None
        # EOS and max_new_tokens come with each request; greedy, as the static batches
        config = GenerationConfig(do_sample=False, eos_token_id=-1, pad_token_id=self.pad_id)
        cb_config = None
        if self.cache_tokens is not None:
            tokens = max(self.cache_tokens, self.max_model_len)
            cb_config = ContinuousBatchingConfig(
                num_blocks=ceil(tokens / ContinuousBatchingConfig.page_size) + 1,
                max_batch_tokens=min(CPU_STEP_TOKENS, tokens),
            )
        manager = self.model.init_continuous_batching(
            generation_config=config, continuous_batching_config=cb_config,
            workload_hints=WorkloadHints(max_prompt_length=self.max_model_len),
        )  # fmt: skip
        if not manager.warmed_up:
            manager.warmup()  # on a GPU: CUDA graphs captured once, not once per call
        # no inference_mode here: the manager's worker thread updates its tensors in place
        manager.start()
        self.manager = manager
        threading.Thread(target=_stop_at_exit, args=(weakref.ref(manager),), daemon=True).start()
        return manager

    def _drop(self, manager: Any) -> None:
        """Stop `manager` and forget it, unless another caller did already (under `_lock`)."""
        if self.manager is not manager:
            return
        self.manager = None
        manager.stop(block=True, timeout=STOP_SECONDS)  # also restores the attention implementation
        manager.destroy()


def _stop_at_exit(manager_ref: weakref.ref) -> None:
    """Ask a manager still running when the main thread ends to stop: its worker thread is not a
    daemon, so an engine never closed would otherwise keep the interpreter from exiting."""
    threading.main_thread().join()
    manager = manager_ref()
    if manager is not None and manager.is_running():
        manager.stop(block=False)
