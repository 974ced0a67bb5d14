"""Timing for the benchmarks: warm-up, alternating order, repeats, median and spread.

`compare` runs every variant once untimed (warm-up: imports, caches, page cache), then
`repeats` rounds in which the variants run in alternating order (forward on even rounds,
backward on odd ones), so a slow drift of the machine's load falls on all of them alike.
Every figure is reported as the median with the min-max spread of the repeats.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def compare(
    variants: Mapping[str, Callable[[], float]], repeats: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per repeat of each variant; a variant returns the seconds it measured."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(variants[name]())
    return times


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """A variant that times all of `fn`."""

    def run() -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    return run


def rate(units: float, seconds: Sequence[float]) -> str:
    """`median (min-max)` of units per second."""
    rates = sorted(units / s for s in seconds)
    f = ",.0f" if rates[0] >= 100 else ".2f"
    return f"{statistics.median(rates):>10{f}}  ({rates[0]:{f}}-{rates[-1]:{f}})"


def table(units: float, unit: str, times: Mapping[str, Sequence[float]], base: str | None = None) -> None:
    """One line per variant: median rate (min-max), median seconds, and the ratio to `base`."""
    width = max(len(name) for name in times) + 2
    print(f"{'':<{width}}{unit + '/s median (min-max)':>32}{'seconds':>10}  {'vs ' + base if base else ''}")
    for name, seconds in times.items():
        ratio = ""
        if base:
            ratio = f"{statistics.median(times[base]) / statistics.median(seconds):.2f}x"
        print(f"{name:<{width}}{rate(units, seconds):>32}{statistics.median(seconds):>10.3f}  {ratio}")


def cli(*args: str, env: Mapping[str, str] | None = None) -> Callable[[], float]:
    """A variant running `instructpt ARGS` in a fresh process (start-up and imports included)."""
    exe = shutil.which("instructpt", path=str(Path(sys.executable).parent)) or shutil.which("instructpt")
    command = [exe, *args] if exe else [sys.executable, "-m", "instructpt", *args]
    full_env = {**os.environ, **(env or {})}

    def run() -> float:
        started = time.perf_counter()
        done = subprocess.run(command, env=full_env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        return seconds

    return run


def machine() -> str:
    """The machine and its load, for the record."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}; "
        f"load average {load} at start"
    )


def load_now() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


class Worker:
    """A variant served by its own process: `python SCRIPT --worker ARGS...` with
    `PYTHONPATH=src` prints one JSON line `{"ready": <instructpt.__file__ or "">}`, then answers
    each input line with one JSON line holding at least `seconds`. Loading and warm caches
    stay in the process; only the timed work is repeated."""

    def __init__(self, script: str, args: Sequence[str], src: Path | None = None) -> None:
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(src)
        self.proc = subprocess.Popen(
            [sys.executable, script, "--worker", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        ready = json.loads(self._read())["ready"]
        if src is not None and not Path(ready).resolve().is_relative_to(Path(src).resolve()):
            raise SystemExit(f"the worker for {src} imported {ready}")
        self.results: list[dict] = []  # every answer, the warm-up's first

    @property
    def last(self) -> dict:
        return self.results[-1]

    def cpu(self, warmup: int = 1) -> list[float]:
        """CPU seconds of the timed runs (robust to other jobs on the machine)."""
        return [r["cpu"] for r in self.results[warmup:]]

    def _read(self) -> str:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise SystemExit(f"a worker died (exit {self.proc.wait()})")
        return line

    def __call__(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.results.append(json.loads(self._read()))
        return self.last["seconds"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def serve(run: Callable[[], dict], ready: str = "") -> None:
    """The worker side of `Worker`: time `run` (returns extra fields) once per input line."""
    print(json.dumps({"ready": ready}), flush=True)
    for _ in sys.stdin:
        started, cpu = time.perf_counter(), time.process_time()
        extra = run()
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        print(json.dumps({"seconds": seconds, "cpu": cpu_s, **extra}), flush=True)
