"""Per-step timing and system-metrics sampling for train.py: the evidence behind the profiler summary.

SageMaker Debugger's framework profiler stops at PyTorch 2.0 and Debugger is closed to new customers,
so the training script records what the ProfilerReport needs itself:

* ``steps.jsonl`` — one line per step: ``{"step", "mode", "mode_step", "start", "wall", "phases":
  {"data": s, "forward_backward": s, "optimizer": s}}``. ``start`` is seconds since the profiler
  started; ``wall`` runs from the first phase of the step to ``end_step``, so ``wall - sum(phases)`` is
  the time spent outside any named phase (logging, hook writes).
* ``system.jsonl`` — one line per sample (every ``interval_ms``) from a daemon thread: CPU % per core,
  process CPU % and RSS (children included, for process-based data loader workers), system memory %,
  and, when CUDA is present, GPU utilisation and memory.
* ``meta.json`` — what train.py passes (num_workers, batch_size, device, init_seconds, ...) plus the
  machine (cpu_count, gpu_count) and the run's start, end and step counts. Written on entry too, so a
  crashed run still says what it was.

Overhead is kept negligible: ``time.perf_counter`` around phases, buffered line writes, no fsync, and
the sampler sleeping on an ``Event``. With ``enabled=False`` every call is a cheap no-op and nothing is
written.

Usage (train.py)::

    with TrainingProfiler(out_dir, interval_ms=500, meta={"batch_size": 32}) as prof:
        for batch in loader_iter:              # wrap the wait for the batch in phase("data")
            with prof.phase("forward_backward"):
                ...
            with prof.phase("optimizer"):
                ...
            prof.end_step(mode="train")
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import psutil

PHASES = ("data", "forward_backward", "optimizer")
STEPS_FILE = "steps.jsonl"
SYSTEM_FILE = "system.jsonl"
META_FILE = "meta.json"

Mode = Literal["train", "eval"]


class _Phase:
    """A reusable timer for one named phase; accumulates into the profiler's current step."""

    __slots__ = ("_name", "_profiler", "_started")

    def __init__(self, profiler: TrainingProfiler, name: str) -> None:
        self._profiler = profiler
        self._name = name
        self._started = 0.0

    def __enter__(self) -> _Phase:
        self._started = time.perf_counter()
        if self._profiler._step_started is None:
            self._profiler._step_started = self._started
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self._started
        phases = self._profiler._phases
        phases[self._name] = phases.get(self._name, 0.0) + elapsed


_NO_OP = contextlib.nullcontext()


class TrainingProfiler:
    """Context manager around a training run that records step phases and samples system metrics."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        interval_ms: int = 500,
        enabled: bool = True,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms}")
        self.out_dir = Path(out_dir)
        self.interval_s = interval_ms / 1000.0
        self.enabled = enabled
        self._meta: dict[str, Any] = dict(meta or {})
        self._timers: dict[str, _Phase] = {}
        self._phases: dict[str, float] = {}
        self._step_started: float | None = None
        self._steps = 0
        self._mode_steps: dict[str, int] = {}
        self._t0 = 0.0
        self._wall_t0 = 0.0
        self._steps_file: IO[str] | None = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    # -- the per-step API ------------------------------------------------------------------------------
    def phase(self, name: str) -> contextlib.AbstractContextManager[Any]:
        """Time the enclosed block as ``name`` within the current step (repeated phases add up)."""
        if not self.enabled:
            return _NO_OP
        timer = self._timers.get(name)
        if timer is None:
            timer = self._timers[name] = _Phase(self, name)
        return timer

    def end_step(self, mode: Mode = "train") -> None:
        """Close the current step: write its phase times and wall time, start timing the next one."""
        if not self.enabled:
            return
        now = time.perf_counter()
        started = self._step_started if self._step_started is not None else now
        mode_step = self._mode_steps.get(mode, 0)
        record = {
            "step": self._steps,
            "mode": mode,
            "mode_step": mode_step,
            "start": round(started - self._t0, 6),
            "wall": round(now - started, 6),
            "phases": {name: round(seconds, 6) for name, seconds in self._phases.items()},
        }
        if self._steps_file is not None:
            self._steps_file.write(json.dumps(record) + "\n")
        self._steps += 1
        self._mode_steps[mode] = mode_step + 1
        self.drop_step()

    def drop_step(self) -> None:
        """Forget the step begun and not ended (also what ``end_step`` does after writing it), so that,
        e.g., the data wait that found the loader empty is not counted in the next step's wall time."""
        self._phases = {}
        self._step_started = None

    def update_meta(self, **fields: Any) -> None:
        """Add facts known only after the profiler started (e.g. ``init_seconds``); written on exit."""
        self._meta.update(fields)

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> TrainingProfiler:
        if not self.enabled:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.drop_step()
        self._t0 = time.perf_counter()
        self._wall_t0 = time.time()
        self._steps_file = open(self.out_dir / STEPS_FILE, "w", buffering=1 << 16)
        self._write_meta(status="running")
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample_loop, name="dogpipe-profiler", daemon=True)
        self._sampler.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=max(5.0, 4 * self.interval_s))
        if self._steps_file is not None:
            self._steps_file.close()
            self._steps_file = None
        self._write_meta(status="failed" if exc_type else "completed")

    # -- internals -----------------------------------------------------------------------------------
    def _write_meta(self, status: str) -> None:
        machine = {
            "cpu_count": psutil.cpu_count(logical=True),
            "physical_cpu_count": psutil.cpu_count(logical=False),
            "memory_total_bytes": psutil.virtual_memory().total,
            "gpu_count": _gpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        }
        run = {
            "status": status,
            "started_at": self._wall_t0,
            "elapsed_seconds": round(time.perf_counter() - self._t0, 6),
            "steps": self._steps,
            "steps_by_mode": dict(self._mode_steps),
            "interval_ms": round(self.interval_s * 1000),
        }
        document = {**machine, **run, **self._meta}
        tmp = self.out_dir / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(document, indent=2, default=str))
        tmp.replace(self.out_dir / META_FILE)

    def _sample_loop(self) -> None:
        sampler = _SystemSampler()
        with open(self.out_dir / SYSTEM_FILE, "w", buffering=1 << 14) as out:
            while not self._stop.wait(self.interval_s):
                out.write(json.dumps({"t": round(time.perf_counter() - self._t0, 3), **sampler.sample()}))
                out.write("\n")
            out.write(json.dumps({"t": round(time.perf_counter() - self._t0, 3), **sampler.sample()}))
            out.write("\n")


class _SystemSampler:
    """Reads CPU, memory and GPU figures; psutil's CPU percentages are since the previous call."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        psutil.cpu_percent(percpu=True)
        self._process.cpu_percent()
        self._cuda = _cuda_module()

    def sample(self) -> dict[str, Any]:
        rss = self._process.memory_info().rss
        with contextlib.suppress(psutil.Error):
            rss += sum(child.memory_info().rss for child in self._process.children(recursive=True))
        record: dict[str, Any] = {
            "cpu_percent": psutil.cpu_percent(percpu=True),
            "process_cpu_percent": self._process.cpu_percent(),
            "rss_bytes": rss,
            "memory_percent": psutil.virtual_memory().percent,
        }
        if self._cuda is not None:
            record["gpus"] = [_gpu_sample(self._cuda, index) for index in range(self._cuda.device_count())]
        return record


def _cuda_module() -> Any | None:
    """torch.cuda when torch is already imported and a GPU is present; the profiler never imports torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:  # a broken driver must not stop training
        return None


def _gpu_count() -> int:
    cuda = _cuda_module()
    return cuda.device_count() if cuda is not None else 0


def _gpu_sample(cuda: Any, index: int) -> dict[str, Any]:
    sample: dict[str, Any] = {"index": index}
    try:
        sample["utilization_percent"] = cuda.utilization(index)  # needs pynvml / amdsmi
    except Exception:
        sample["utilization_percent"] = None
    try:
        free, total = cuda.mem_get_info(index)
        sample["memory_used_bytes"] = total - free
        sample["memory_total_bytes"] = total
    except Exception:
        sample["memory_used_bytes"] = cuda.memory_reserved(index)
        sample["memory_total_bytes"] = None
    return sample


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file written above. A truncated *last* line is what a killed run leaves, so it
    is dropped; a bad line anywhere else means the file is corrupt and raises naming the line."""
    lines = Path(path).read_text().splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON line ({error.msg})") from None
    return records
