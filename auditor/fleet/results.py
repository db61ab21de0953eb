"""How the coordinator reads workers' answers from a Redis result backend: by polling.

Celery's Redis backend subscribes the caller to one pub/sub channel per task and has Redis
push every answer to it. A run's answers are large (a host's facts and results: hundreds of
KiB) and arrive faster than one process takes them in: past Redis's pub/sub output buffer
limit (`client-output-buffer-limit pubsub`, 32 MiB by default) Redis closes the subscriber,
and the answers published meanwhile are never seen (the targets would wait out the answer
timeout with their answers sitting in Redis). The coordinator therefore subscribes to
nothing and reads the answers' keys with MGET (`get_many`), a poll that cannot overflow.
Workers store their answers with Celery's own backend, unchanged. When workers outrun the
coordinator, thousands of answers wait in Redis: the poll reads them ANSWERS_PER_READ keys at
a time and decodes each only when the one before it has been handed on, so the coordinator
never holds more than a few of them at once (Celery's own get_many reads every pending key
in one MGET and decodes every answer it found before handing on the first).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import TimeoutError as NoAnswer

ANSWERS_PER_READ = 128  # keys read by one MGET (at 264 KiB an answer, 33 MiB at most)


class PolledRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend without the pub/sub subscription per sent task."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Subscribe to nothing: answers are polled (`get_many`)."""

    def on_result_fulfilled(self, result: Any) -> None:
        """Nothing to unsubscribe from."""

    def forget(self, task_id: str) -> None:
        """Delete the answer's key (no subscription to cancel)."""
        self.delete(self.get_key_for_task(task_id))

    def get_many(
        self,
        task_ids: Iterable[str],
        timeout: float | None = None,
        interval: float = 0.5,
        **_celery_options: Any,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(task id, meta) of each answer once it is ready, as Celery's get_many gives them,
        its key deleted once handed on (one DEL per read); raises Celery's TimeoutError once
        the polls have waited `timeout` seconds in all with answers still missing."""
        pending = set(task_ids)
        waited = 0.0
        while pending:
            keys = list(pending)
            for start in range(0, len(keys), ANSWERS_PER_READ):
                chunk = keys[start : start + ANSWERS_PER_READ]
                names = [self.get_key_for_task(key) for key in chunk]
                handed: list[bytes] = []
                for task_id, name, value in zip(chunk, names, self.mget(names), strict=True):
                    if value is None:
                        continue
                    meta = self.decode_result(value)
                    if meta["status"] in states.READY_STATES:
                        pending.discard(task_id)
                        handed.append(name)
                        yield task_id, meta
                if handed:
                    self.client.delete(*handed)
            if not pending:
                return
            if timeout is not None and waited >= timeout:
                raise NoAnswer(f"Operation timed out ({timeout})")
            nap = interval if timeout is None else min(interval, timeout - waited)
            time.sleep(nap)
            waited += nap
