"""One worker process, driven from the process that claimed its cells (see :mod:`seqbench.worker`
for the protocol).

The worker is started on first use and reused for the next cell; when it dies (a crash, an
out-of-memory kill, a stop it did not honour in time) the cell in progress is reported as such
and the next cell gets a fresh process. The worker dies with the thread that started it
(Linux's parent-death signal), so no orphan computes a cell whose claim is gone.

A job with ``memory_limit_mib`` has the worker's resident memory watched while it runs
(:class:`seqbench.limits.MemoryWatch`): past the cap the worker is killed at once and the cell
recorded ``oom``, with where it was (from its last event).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench import limits, record, threads
from seqbench.executors.base import CellJob

#: Seconds a worker gets to honour a stop request before it is killed.
STOP_GRACE_SECONDS = 30.0


@dataclass
class WorkerExit:
    """How the worker ended one cell: its status (``done``), or how it died."""

    status: str | None  # the record status the worker reported; None if it died first
    returncode: int | None = None  # set when the process ended
    stop: dict[str, Any] | None = None  # the stop request in force, if any
    killed_after_stop: bool = False

    @property
    def interrupted(self) -> bool:
        return self.status is None and self.returncode in (130, -signal.SIGINT)

    @property
    def ended_by_stop(self) -> bool:
        """The worker died (killed by us, or on its own) while a stop request was in force:
        the cell ends with the status asked for, not as a crash."""
        return self.status is None and self.stop is not None and not self.interrupted

    def crash_reason(self) -> str:
        code = self.returncode
        if self.killed_after_stop and self.stop is not None and self.stop.get("at_once"):
            return f"{self.stop.get('reason')}; the worker was killed at once"
        if self.stop is not None and not self.killed_after_stop:
            return (
                f"ended {self.stop.get('status')}: {self.stop.get('reason')}; the worker died "
                f"(exit status {code}) before it had stopped"
            )
        if self.killed_after_stop and self.stop is not None:
            return (
                f"ended {self.stop.get('status')}: {self.stop.get('reason')}; the worker did not "
                f"stop within {STOP_GRACE_SECONDS:.0f} s and was killed"
            )
        if code is None:
            return "the worker stopped answering"
        if code < 0:
            name = signal.Signals(-code).name
            reason = f"the worker was killed by {name}"
            if -code == signal.SIGKILL:
                reason += " (often the out-of-memory killer: check dmesg and the cell's memory)"
            return reason
        return f"the worker exited with status {code} without writing a result"


class WorkerProcess:
    """A ``python -m seqbench.worker`` process placed on ``device`` with ``n_threads``."""

    def __init__(
        self,
        device: str,
        n_threads: int,
        workers: int = 1,
        env: dict[str, str] | None = None,
        name: str = "worker",
    ) -> None:
        self.device = device
        self.n_threads = n_threads
        self.workers = workers
        self.name = name
        self._env = env or {}
        self._process: subprocess.Popen[str] | None = None
        self._stderr: Path | None = None
        self._lock = threading.Lock()
        self._stop: dict[str, Any] | None = None
        self._stop_timer: threading.Timer | None = None
        self._killed_after_stop = False
        self._current: str | None = None  # the hash of the cell being computed
        self._place = ""  # where that cell is, from its last event
        self.cells_served = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def where(self) -> str:
        return f"{self.name} (pid {self.pid}, {self.device}, {self.n_threads} threads)"

    def start(self) -> None:
        """Start the process if it is not running (the caller's thread owns it)."""
        if self._process is not None and self._process.poll() is None:
            return
        env = {
            **os.environ,
            **self._env,
            **threads.worker_environment(self.n_threads, self.workers),
            "PYTHONUNBUFFERED": "1",
            "SEQBENCH_RUNNER_PID": str(os.getpid()),  # the worker dies with us
        }
        fd, name = tempfile.mkstemp(prefix="seqbench-worker-", suffix=".log")
        self._stderr = Path(name)
        with os.fdopen(fd, "w") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "seqbench.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        self.cells_served = 0

    def run_cell(
        self, job: CellJob, out: Path, on_event: Callable[[dict[str, Any]], None]
    ) -> WorkerExit:
        """Compute ``job`` into ``out``; events go to ``on_event`` (the worker's stray output
        to the cell's log). Returns when the worker reports the cell done or dies."""
        self.start()
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        with self._lock:
            self._stop, self._killed_after_stop = None, False
            self._current, self._place = job.hash, "while loading the data and building the model"
        command = {"op": "run", "job": job.to_json(), "out": str(out), "device": self.device}
        try:
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: reading below finds out how
        watch = self._watch_memory(job, process.pid)
        status = None
        try:
            for line in process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if not isinstance(event, dict) or "event" not in event:
                    _append(out / record.LOG, line)  # stray output of a library: keep it
                    continue
                kind = event["event"]
                if kind == "done" and event.get("hash") == job.hash:
                    status = str(event.get("status"))
                    break
                if kind in ("ready", "cell_start"):
                    continue
                self._place = place_of(event) or self._place
                on_event(event)
        finally:
            if watch is not None:
                watch.stop()
            with self._lock:
                self._current = None
        self._cancel_timer()
        self.cells_served += 1
        with self._lock:
            stop, killed = self._stop, self._killed_after_stop
        if status is not None:
            return WorkerExit(status, stop=stop)
        code = self._reap()
        _append(out / record.LOG, self._stderr_tail())
        return WorkerExit(None, returncode=code, stop=stop, killed_after_stop=killed)

    def stop(self, job: CellJob, status: str, reason: str, requested_by: str | None) -> None:
        """Ask the worker to end ``job``'s cell; kill it if it has not after the grace time.
        A request for a cell this worker is not computing (any more) is ignored."""
        request = {
            "op": "stop",
            "hash": job.hash,
            "status": status,
            "reason": reason,
            "requested_by": requested_by,
        }
        with self._lock:
            if self._stop is not None or self._current != job.hash:
                return
            self._stop = request
            process = self._process
            if process is None or process.stdin is None:
                return
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return
            self._stop_timer = threading.Timer(STOP_GRACE_SECONDS, self._kill_after_stop)
            self._stop_timer.daemon = True
            self._stop_timer.start()

    def stop_at_once(
        self, job: CellJob, status: str, reason: str, requested_by: str | None
    ) -> None:
        """End ``job``'s cell now by killing the worker (a memory cap cannot wait for the next
        event); the cell is recorded with ``status`` and ``reason``."""
        with self._lock:
            if self._current != job.hash or (self._stop or {}).get("at_once"):
                return
            self._stop = {"op": "stop", "hash": job.hash, "status": status, "reason": reason,
                          "requested_by": requested_by, "at_once": True}  # fmt: skip
            self._killed_after_stop = True
        self.kill()

    def _watch_memory(self, job: CellJob, pid: int) -> limits.MemoryWatch | None:
        """Watch the worker's resident memory against the job's cap (where /proc tells)."""
        cap = job.memory_limit_mib
        if cap is None or not limits.watchable():
            return None

        def exceeded(rss: float) -> None:
            self.stop_at_once(
                job,
                "oom",
                f"the worker's resident memory reached {limits.format_mib(rss)}, past the cell's "
                f"limit of {limits.format_mib(cap)} (--memory-limit), {self._place}",
                "memory-limit",
            )

        return limits.MemoryWatch(pid, cap, exceeded).start()

    def _kill_after_stop(self) -> None:
        with self._lock:
            self._killed_after_stop = True
        self.kill()

    def _cancel_timer(self) -> None:
        with self._lock:
            if self._stop_timer is not None:
                self._stop_timer.cancel()
                self._stop_timer = None

    def kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def close(self, timeout: float = 10.0) -> None:
        """Ask the worker to leave; kill it if it does not."""
        process, self._process = self._process, None
        self._cancel_timer()
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                process.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self._remove_stderr()

    def _reap(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        return code

    def _stderr_tail(self, limit: int = 4000) -> str:
        if self._stderr is None:
            return ""
        try:
            text = self._stderr.read_text(encoding="utf-8", errors="replace")[-limit:]
        except OSError:
            text = ""
        self._remove_stderr()
        return text

    def _remove_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.unlink(missing_ok=True)
            self._stderr = None


def place_of(event: dict[str, Any]) -> str:
    """Where a cell is, from one of its worker's events ('' when the event does not say)."""
    kind = event.get("event")
    if kind in ("step_start", "step"):  # a throughput cell: a step begins, or ended
        during = "during" if kind == "step_start" else "after"
        if event.get("phase") == "score":
            return f"{during} the scoring of {event.get('step')} users"
        name = "warm-up step" if event.get("phase") == "warmup" else "timed training step"
        return f"{during} {name} {event.get('step')} of {event.get('steps')}"
    if kind == "batch":
        return f"after training batch {event.get('batch')} of {event.get('batches')}"
    if kind == "epoch_start":
        return f"in epoch {event.get('epoch')}"
    if kind == "epoch":
        return f"after epoch {event.get('epoch')}"
    return ""


def _append(path: Path, text: str) -> None:
    if not text:
        return
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        pass
