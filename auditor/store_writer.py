"""The evidence store in a process of its own, so that storing a run never slows its audit.

Encoding, compressing and writing one target's facts and results takes ~10 ms of CPU, and
importing SQLAlchemy a third of a second. In the auditing process all of that holds the GIL
the connections and the judge need; in a child process it runs on another core. The child
runs at a lower priority (`NICE`): it takes what the audit leaves of the machine. It is
forked when the auditing process has no other thread yet (the usual case: cheap, and nothing
to import again), else spawned.

`StoreWriter(url)` starts the child, which opens the store (auditor.store.open_store).
`send` hands it a call of a Store method and returns once the call is in the child's pipe
(1 MiB: at once, unless the child is that far behind); `ask` waits for one's answer. The
child makes the calls in the order they were sent. Once one fails, it makes no more, and
every later `ask` raises that failure (`WriterError`, saying whether the store could not be
opened at all). Whatever the child was handed it writes, even when the auditing process is
killed: it stops only when its pipe is closed, after the last call.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkContext, SpawnContext
from typing import Any

from auditor.errors import AuditorError

log = logging.getLogger(__name__)

Request = tuple[str, tuple[Any, ...], dict[str, Any], bool]  # method, args, kwargs, answer?

NICE = 10  # the writer's priority below the audit's
PIPE_SIZE = 1 << 20  # bytes of calls in flight: Linux's default limit for any user
CLOSE_TIMEOUT = 60.0  # seconds to finish the last writes once the pipe is closed


class WriterError(AuditorError):
    """The store could not be opened (`opening`), or a write failed."""

    def __init__(self, message: str, hint: str | None = None, *, opening: bool = False):
        super().__init__(message, hint=hint)
        self.opening = opening


class StoreWriter:
    """A child process that owns the store. Thread-safe."""

    def __init__(self, url: str | None, *, debug: bool = False) -> None:
        # A forked child of a threaded process may inherit a lock some thread held.
        if threading.active_count() == 1:
            context: ForkContext | SpawnContext = multiprocessing.get_context("fork")
        else:
            context = multiprocessing.get_context("spawn")
        requests_in, self._requests = context.Pipe(duplex=False)
        _widen(self._requests)
        self._replies, replies_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve,
            args=(url, requests_in, replies_out, debug, (self._requests, self._replies)),
            name="auditor-store",
        )
        self._process.start()
        self.start_method = context.get_start_method()
        requests_in.close()  # the child's ends: the pipe then breaks when the child is gone
        replies_out.close()
        self._lock = threading.Lock()
        self._failure: WriterError | None = None
        self._url: str | None = None
        # Before multiprocessing's own exit hook, which would wait for the child forever
        # while this end of its pipe is open.
        atexit.register(self.close)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def opened(self) -> str:
        """The store's URL, its password hidden, once it is open (waits for that); raises
        WriterError when it could not be opened."""
        with self._lock:
            self._opened()
            assert self._url is not None
            return self._url

    def send(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Have the child call Store.`method`; a failure is raised by a later `ask`. Returns
        once the call is in the pipe (which outlives this process), at once unless the pipe
        is full."""
        with self._lock:
            self._post((method, args, kwargs, False))

    def ask(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Store.`method`(...) called in the child, after everything sent before it."""
        with self._lock:
            self._opened()
            self._post((method, args, kwargs, True))
            return self._answer()

    def close(self) -> None:
        """Let the child finish what it was handed, then stop it."""
        atexit.unregister(self.close)
        with self._lock:
            if not self._requests.closed:
                self._requests.close()  # the child's end of file: it stops after the last call
            self._process.join(CLOSE_TIMEOUT)
            if self._process.is_alive():  # it ignores SIGTERM (see _serve)
                log.warning("the store writer did not stop within %gs; ending it", CLOSE_TIMEOUT)
                self._process.kill()
                self._process.join()
            self._replies.close()

    def _post(self, request: Request) -> None:
        if self._failure is not None:  # nothing more is written; `ask` says why
            if request[3]:
                raise self._failure
            return
        try:
            self._requests.send(request)
        except (OSError, ValueError) as exc:  # a broken pipe: the child is gone
            self._failure = self._gone(exc)
            if request[3]:
                raise self._failure from exc

    def _opened(self) -> None:
        """Read the child's first word, which says whether the store opened."""
        if self._url is None and self._failure is None:
            try:
                self._url = self._answer()
            except WriterError as exc:
                self._failure = exc
        if self._failure is not None:
            raise self._failure

    def _answer(self) -> Any:
        wait([self._replies, self._process.sentinel])
        try:
            ok, value = self._replies.recv()
        except (EOFError, OSError) as exc:
            self._failure = self._gone(exc)
            raise self._failure from exc
        if not ok:
            self._failure = WriterError(*value[:2], opening=value[2])
            raise self._failure
        return value

    def _gone(self, exc: BaseException) -> WriterError:
        self._process.join(1)
        code = self._process.exitcode
        return WriterError(f"the store writer process stopped (exit code {code}): {exc}")


def _widen(pipe: Connection) -> None:
    """Give the pipe PIPE_SIZE bytes (Linux), so that the run's catalog and its first targets
    do not wait for the child, which reads nothing while it opens the store: 64 KiB, the
    default, holds less than the catalog alone."""
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (AttributeError, OSError):  # not Linux, or above this user's limit
        log.debug("the store writer's pipe keeps its default size")


def _serve(
    url: str | None,
    requests: Connection,
    replies: Connection,
    debug: bool,
    parent_ends: tuple[Connection, Connection],
) -> None:
    """The child: open the store, then make every call sent until the pipe closes."""
    for end in parent_ends:  # a forked child holds the parent's ends too: without this, the
        end.close()  # pipe would never close
    # Ctrl-C reaches the whole process group, and the parent answers it by closing the run;
    # the writer goes on until the parent has handed it everything.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICE)
    if debug:
        from auditor.redact import RedactingFormatter

        handler = logging.StreamHandler()
        handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    failure: tuple[str, str | None, bool] | None = None
    store = None
    try:
        from auditor.store import open_store

        store = open_store(url)
        replies.send((True, store.url))
    except Exception as exc:  # an AuditorError: the store cannot be opened; else a failure
        failure = (*_describe(exc), isinstance(exc, AuditorError))
        replies.send((False, failure))
    try:
        while True:
            try:
                method, args, kwargs, answer = requests.recv()
            except EOFError:  # the parent closed the pipe (or died): all is written
                return
            value = None
            if failure is None:
                try:
                    value = getattr(store, method)(*args, **kwargs)
                except Exception as exc:
                    failure = (*_describe(exc), False)
            if answer:
                replies.send((True, value) if failure is None else (False, failure))
    finally:
        if store is not None:
            store.close()


def _describe(exc: Exception) -> tuple[str, str | None]:
    """What the parent shows: an AuditorError's own words, else the internal error (its
    traceback logged here under --debug)."""
    if isinstance(exc, AuditorError):
        return str(exc), exc.hint
    log.debug("the store writer failed", exc_info=exc)
    return f"the run could not be stored: {type(exc).__name__}: {exc}", None
