"""How the coordinator reads workers' answers from a Redis result backend: by polling.

Celery's Redis backend subscribes the caller to one pub/sub channel per task and has Redis
push every answer to it. A run's answers are large (a host's facts and results: hundreds of
KiB) and arrive faster than one process takes them in: past Redis's pub/sub output buffer
limit (`client-output-buffer-limit pubsub`, 32 MiB by default) Redis closes the subscriber,
and the answers published meanwhile are never seen (the targets would wait out the answer
timeout with their answers sitting in Redis). The coordinator therefore subscribes to
nothing and reads the answers' keys with MGET (`get_many`), a poll that cannot overflow.
Workers store their answers with Celery's own backend, unchanged.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class PolledRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend without the pub/sub subscription per sent task."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Subscribe to nothing: answers are polled (`get_many`)."""

    def on_result_fulfilled(self, result: Any) -> None:
        """Nothing to unsubscribe from."""

    def forget(self, task_id: str) -> None:
        """Delete the answer's key (no subscription to cancel)."""
        self.delete(self.get_key_for_task(task_id))
