"""GPU throughput of the synthesize stage and of `train-synthesizer` on a Mistral-7B-shaped model.

The model is built from Mistral-7B-v0.1's config values (hidden 4096, 32 layers, 32 heads, 8 KV
heads, MLP 14336, vocab 32000) with random bf16 weights: speed depends on the shape, not on the
weights. Documents are prose of ~600 tokens; generations are forced to `--gen-tokens` (EOS
ignored) so every engine does the same work; 2 rounds, as the method prescribes (docs/method.md).

Two kinds of run:

* `--small N` (the one for a short GPU session): the modes named by `--modes` (`eager`,
  `static_cache`, `continuous`; the `eager` baseline always runs first) on the same N documents,
  EACH IN ITS OWN PROCESS under `--mode-timeout` seconds (a hung mode is killed with its process
  group, its phase and figures so far recorded), all within `--deadline` seconds. OUT/gpu-small.json
  is rewritten after every mode, so a run cut short keeps what it measured. Every mode warms up
  first: `static_cache` with a whole pass on the same documents (it compiles every shape the
  measured pass meets: compile time is reported apart from the steady-state figures), the others
  with 16 documents. Per mode: raw / generated tokens/s, documents/s, peak memory, GPU busy share,
  versions and GPU name; modes/KEY.log holds each process's output.
* without `--small`, in one process (figures appended to OUT/gpu.json as each part ends):
  `matmul` (the GPU's bf16 matrix rate, 8192^3, mean of 10 after 3 warm-ups; the physical bound is
  that rate / (2 x parameters) FLOP per processed token); `hf` modes through `synthesize_batch`
  (length-sorted static batches, left padding, sdpa) at the old fixed budget (65,536 tokens), the
  memory-derived default, a larger batch cap and continuous batching, with the share of wall time
  inside `model.generate`, in the engine around it, and outside the engine, and the padding share;
  `train` (`train_synthesizer`, full and LoRA, on 4,096-token sequences: step time, tokens/s,
  peak memory); last the static KV cache mode in its own process.

    python benchmarks/synthesize_gpu.py --small 256 --mode-timeout 240 --deadline 420 --flops 781.9 --out DIR
    python benchmarks/synthesize_gpu.py --out DIR [--deadline 480]            # everything, on a GPU
    python benchmarks/synthesize_gpu.py --tiny --small 4 --compile-backend eager --out /tmp/gpu-smoke  # CPU
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from gpu_measure import SMALL_MODES, build, child, documents, env_info, matmul, run_mode  # noqa: E402
from gpu_train import train_part, unwrap_lora  # noqa: E402
from instructpt.io.files import read_json_or_none, write_json  # noqa: E402

# name, engine settings, documents (GPU); the tiny run uses few documents for each
MODES = [
    ("hf budget=65536 (old default)", dict(max_batch_tokens=65536), 256),
    ("hf budget=auto (new default)", dict(), 512),
    ("hf budget=auto max_batch_size=512", dict(max_batch_size=512), 1024),
    ("hf continuous batching", dict(continuous_batching=True), 512),
]
COMPILED_DOCS = 256
MIN_MODE_S = 15  # a mode is not started with less time than this left
LOG_TAIL = 1500


class Results:
    """The figures so far, rewritten (atomically) after every part."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, {"parts": []}

    def add(self, row: dict) -> None:
        print(json.dumps(row), flush=True)
        self.data["parts"].append(row)
        write_json(self.path, self.data)

    def rows(self, part: str) -> list[dict]:
        return [r for r in self.data["parts"] if r.get("part") == part]


def host_env(args: argparse.Namespace) -> dict:
    """What the parent knows without touching the GPU (each mode's row has what torch saw)."""
    row: dict[str, Any] = {"part": "env", "python": sys.version.split()[0], "argv": sys.argv[1:]}
    for name in ("torch", "transformers", "triton"):
        try:
            row[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            row[name] = None
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        try:
            row["gpu"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            row["gpu"] = f"nvidia-smi failed: {exc}"
    row["cpus"] = os.cpu_count()
    return row


def kill_group(process: subprocess.Popen) -> None:
    """End the mode's process and everything it started (compile workers): SIGKILL to its group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def log_tail(path: Path, n: int = LOG_TAIL) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


EXCEPTION_LINE = re.compile(r"(?:[A-Za-z_]\w*\.)*[A-Z]\w*: ")  # `torch._dynamo.exc.InvalidBackend: ...`


def last_error(log: str) -> str:
    """The last line of the log that names an exception, else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if EXCEPTION_LINE.match(line):
            return line[:400]
    return lines[-1][:400] if lines else "no output"


def how_it_ended(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            pass
    return f"exit status {rc}"


def run_child(key: str, docs: int, limit: float, args: argparse.Namespace) -> dict:
    """Mode `key` on `docs` documents in its own process group, killed after `limit` seconds."""
    folder = args.out / "modes"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (folder / f"{key}.json", folder / f"{key}.progress.json"):
        stale.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--child", key, "--small", str(docs), "--out", str(args.out),
               "--doc-tokens", str(args.doc_tokens), "--gen-tokens", str(args.gen_tokens)]  # fmt: skip
    command += ["--tiny"] if args.tiny else []
    command += ["--flops", str(args.flops)] if args.flops else []
    command += ["--compile-backend", args.compile_backend] if args.compile_backend else []
    log = folder / f"{key}.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc: int | None = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            kill_group(process)
            rc = None
        except BaseException:  # interrupted (SIGTERM, Ctrl-C): leave no mode running
            kill_group(process)
            raise
    wall = round(time.perf_counter() - started, 1)
    row = read_json_or_none(folder / f"{key}.json")
    if isinstance(row, dict):  # its figures are complete even if it then failed to exit cleanly
        if rc != 0:
            row["exit_note"] = "killed at the time limit" if rc is None else how_it_ended(rc)
            row["exit_note"] += " after writing its figures"
        return {**row, "wall_seconds": wall}
    progress = read_json_or_none(folder / f"{key}.progress.json") or {}
    failed: dict[str, Any] = {"part": "synthesize", "mode": SMALL_MODES[key][0], "mode_key": key,
                              "documents": docs, "wall_seconds": wall}  # fmt: skip
    failed.update({k: v for k, v in progress.items() if k not in ("pid", "phase")})
    phase = progress.get("phase", "start-up")
    if rc is None:
        failed["error"] = f"timeout: not done within {round(limit, 1):g} s (during: {phase}); killed"
    else:
        failed["error"] = f"{how_it_ended(rc)} during {phase}: {last_error(log_tail(log, 20000))}"
    failed["child_pid"] = process.pid
    failed["log_tail"] = log_tail(log)
    return failed


def small(args: argparse.Namespace, left: Any) -> None:
    """The `--modes` on the same N documents, one process each; JSON rewritten after every mode."""
    results = Results(args.out / "gpu-small.json")
    results.add(host_env(args))
    keys = ["eager", *[k for k in args.modes if k != "eager"]]
    try:
        for key in keys:
            limit = min(args.mode_timeout, left() - 2)
            if limit < min(MIN_MODE_S, args.mode_timeout):
                why = f"deadline: {max(left(), 0):.0f} s left of --deadline {args.deadline:g}"
                label = SMALL_MODES[key][0]
                results.add({"part": "synthesize", "mode": label, "mode_key": key, "skipped": why})
                continue
            row = run_child(key, args.small, limit, args)
            eager = [
                r for r in results.rows("synthesize") if r.get("mode_key") == "eager" and "error" not in r
            ]
            if eager and "raw_tokens_per_s" in row and key != "eager":
                ratio = row["raw_tokens_per_s"] / eager[0]["raw_tokens_per_s"]
                row["raw_vs_eager"] = float(f"{ratio:.3g}")
            results.add(row)
    except BaseException as exc:
        results.add({"part": "run", "interrupted": type(exc).__name__, "seconds_left": round(left(), 1)})
        raise
    results.add({"part": "run", "done": True, "seconds_left": round(left(), 1)})


def full(args: argparse.Namespace, left: Any) -> None:
    """Everything in one process (the compiled mode last, in its own)."""
    import torch
    import transformers

    results = Results(args.out / "gpu.json")
    results.add({"part": "env", **env_info(torch, transformers, args.device)})
    rate = matmul(torch, args.tiny)
    results.add(rate)
    args.flops = args.flops or rate["tflops"]
    started = time.perf_counter()
    model, hf_tok, rust = build(args)
    results.add({"part": "model", "parameters": model.num_parameters(),
                 "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip

    def mode(name: str, settings: dict, n: int, model: Any) -> None:
        docs = documents(rust, n if not args.tiny else 8, args.doc_tokens)
        try:
            results.add(run_mode(name, settings, docs, model, hf_tok, args, args.flops))
        except Exception as exc:  # noqa: BLE001 - report a mode this machine cannot run, go on
            results.add(
                {"part": "synthesize", "mode": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            )
            gc.collect()
            torch.cuda.empty_cache() if args.device == "cuda" else None

    run_mode(
        "warm-up",
        dict(max_batch_tokens=65536),
        documents(rust, 16, args.doc_tokens),
        model,
        hf_tok,
        args,
        None,
    )
    for name, settings, n in MODES[:3]:
        if left() < 60:
            results.add({"part": "synthesize", "mode": name, "skipped": "deadline"})
            continue
        mode(name, settings, n, model)
    work = Path(tempfile.mkdtemp(prefix="instructpt-train-"))  # data and tokenizer for train-synthesizer
    for lora in (False, True):
        if left() < 70:
            results.add({"part": "train", "lora": lora, "skipped": "deadline"})
            continue
        try:
            results.add(train_part(lora, model, hf_tok, args, work))
        except Exception as exc:  # noqa: BLE001
            results.add({"part": "train", "lora": lora, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        gc.collect()
        torch.cuda.empty_cache() if args.device == "cuda" else None
    unwrap_lora(model)
    if left() > 60:
        mode(*MODES[3], model)
    del model
    gc.collect()
    torch.cuda.empty_cache() if args.device == "cuda" else None
    if left() < 90:
        results.add({"part": "synthesize", "mode": SMALL_MODES["static_cache"][0], "skipped": "deadline"})
        return
    results.add(run_child("static_cache", COMPILED_DOCS if not args.tiny else 8, left() - 5, args))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--doc-tokens", type=int, default=600)
    parser.add_argument("--gen-tokens", type=int, default=None, help="default: 300 (16 with --tiny)")
    parser.add_argument("--deadline", type=float, default=480,
                        help="seconds for the whole run: parts and modes that would not fit "
                        "are skipped")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="a tiny model on CPU: checks the script runs")
    parser.add_argument("--flops", type=float, default=None, help="the measured bf16 TFLOP/s (for the bound)")
    parser.add_argument("--small", type=int, default=0, help="N documents: the --modes side by side, "
                        "each in its own process under --mode-timeout seconds")  # fmt: skip
    parser.add_argument("--modes", default=",".join(SMALL_MODES),
                        help=f"with --small: a comma list of {', '.join(SMALL_MODES)} "
                        "(eager always runs, first)")  # fmt: skip
    parser.add_argument("--mode-timeout", type=float, default=240)
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend for static_cache (default: transformers' own, "
                        "GPU only; `eager` traces the decoding step with dynamo on CPU without "
                        "generating code)")  # fmt: skip
    parser.add_argument("--child", choices=list(SMALL_MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in SMALL_MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)} in --modes; choose from {', '.join(SMALL_MODES)}")
    if args.child and args.small < 1:
        parser.error("--child needs --small N (the number of documents)")
    if args.gen_tokens is None:
        args.gen_tokens = 16 if args.tiny else 300
    values = {"--small": args.small or 1, "--doc-tokens": args.doc_tokens, "--gen-tokens": args.gen_tokens,
              "--mode-timeout": args.mode_timeout, "--deadline": args.deadline}  # fmt: skip
    if bad := [name for name, value in values.items() if value <= 0]:
        parser.error(f"{', '.join(bad)} must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    t0 = time.perf_counter()
    args = parse_args(argv)

    def left() -> float:
        return args.deadline - (time.perf_counter() - t0)

    args.out.mkdir(parents=True, exist_ok=True)
    if args.small and not args.child:  # the parent touches no GPU: each mode's process does
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill from outside: record it
        small(args, left)
        return
    import torch

    args.device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.child:
        child(args)
        sys.stdout.flush()
        os._exit(0)  # figures written: no wait on worker threads or compile workers at exit
    else:
        full(args, left)


if __name__ == "__main__":
    main()
