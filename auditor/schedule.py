"""A long-running scheduler: one job (an `auditor run` command line) on a cron schedule.

Each run is a child process (`python -m auditor run ...`), so a crash or a leak in one run
never reaches the scheduler or the next run, and each run is stored like any other. Runs of
one job never overlap: the scheduler waits for a run to end, skips the fire times that passed
meanwhile (and says so), and holds a lock file while a run is going so a second scheduler,
or a cron entry, running the same job waits its turn instead of starting beside it.
SIGTERM or SIGINT stops the scheduler cleanly: a running job is sent SIGTERM (it keeps what
it finished and marks the run incomplete) and waited for.
"""

from __future__ import annotations

import fcntl
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from croniter import croniter

from auditor.errors import InputError

Log = Callable[[str], None]


class ScheduleError(InputError):
    """A schedule that cannot be used (bad cron expression, bad options)."""


def parse_cron(expression: str) -> str:
    """A cron expression croniter accepts: 5 fields, or 6 with seconds last."""
    if len(expression.split()) not in (5, 6) or not croniter.is_valid(expression):
        raise ScheduleError(
            f"bad cron expression {expression!r}: expected 5 fields (minute hour day month "
            "weekday), or 6 with seconds last",
            item=expression,
        )
    return expression


@dataclass(frozen=True)
class Job:
    """What to run, when, and how."""

    cron: str
    argv: tuple[str, ...]  # the whole command of one run
    jitter: float = 0.0  # seconds: each run starts up to this much after its fire time
    max_runs: int | None = None  # stop after this many runs (None: until stopped)
    lock_path: Path | None = None
    stop_timeout: float = 120.0  # seconds a run gets to finish after SIGTERM


def run_argv(run_args: Sequence[str]) -> tuple[str, ...]:
    """The command of one scheduled `auditor run`."""
    return (sys.executable, "-m", "auditor", "run", *run_args)


class Scheduler:
    """Runs one Job until stopped (SIGTERM/SIGINT in the main thread, or `stop()`)."""

    def __init__(self, job: Job, log: Log) -> None:
        self.job = job
        self.log = log
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def stop(self, _signum: int | None = None, _frame: Any = None) -> None:
        """Stop after (or, by SIGTERM to it, during) the current run. Safe in a signal
        handler: it only sets a flag and signals the child."""
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    def serve(self) -> int:
        """Run the job at every fire time; returns the number of runs."""
        with self._signals():
            fire = self._next_fire(self._now())
            while not self.stopping.is_set():
                start = fire + timedelta(seconds=random.uniform(0, self.job.jitter))
                self.log(f"next run at {start.isoformat(timespec='seconds')}")
                if not self._sleep_until(start):
                    break
                self._run_once()
                if self.job.max_runs is not None and self.runs >= self.job.max_runs:
                    break
                after = self._now()
                fire = self._next_fire(after)
                missed = self._missed(start, after)
                if missed:
                    self.log(f"skipped {missed} fire time(s) while the run was going")
        if self.stopping.is_set():
            self.log(f"stopped after {self.runs} run(s)")
        return self.runs

    def _run_once(self) -> None:
        with self._locked() as got:
            if not got:
                self.log(f"skipped: another run of this job holds {self.job.lock_path}")
                return
            began = time.monotonic()
            self.runs += 1
            self.child = subprocess.Popen(self.job.argv, stdin=subprocess.DEVNULL)
            self.log(f"run {self.runs} started (pid {self.child.pid})")
            status = self._wait(self.child)
            self.child = None
            self.log(f"run {self.runs} exited {status} after {time.monotonic() - began:.1f}s")

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        while True:
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping.is_set():
                try:
                    return child.wait(timeout=self.job.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.log(f"run {self.runs} ignored SIGTERM for {self.job.stop_timeout:g}s")
                    child.kill()
                    return child.wait()

    def _sleep_until(self, when: datetime) -> bool:
        """Wait until `when`; False when stopped first."""
        while not self.stopping.is_set():
            left = (when - self._now()).total_seconds()
            if left <= 0:
                return True
            self.stopping.wait(min(left, 1.0))
        return False

    def _next_fire(self, after: datetime) -> datetime:
        fire: datetime = croniter(self.job.cron, after).get_next(datetime)
        return fire

    def _missed(self, since: datetime, until: datetime) -> int:
        """Fire times strictly between `since` and `until` (capped: a count, not a list)."""
        times = croniter(self.job.cron, since)
        missed = 0
        while missed < 10_000 and times.get_next(datetime) < until:
            missed += 1
        return missed

    @staticmethod
    def _now() -> datetime:
        return datetime.now().astimezone()  # cron times are local times, as in crontab

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def _locked(self) -> Iterator[bool]:
        """Hold the job's lock file for one run; yields False when another process has it."""
        if self.job.lock_path is None:
            yield True
            return
        self.job.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = self.job.lock_path.open("a")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            handle.close()  # closing releases the lock
