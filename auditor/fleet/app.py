"""The Celery application of a distributed run: one audit task, JSON only, nothing lost.

`make_app(broker)` builds it for the coordinator (which only sends tasks and reads their
results) and for `auditor worker` (which also registers the task with the worker's own
credentials). Nothing is registered at import. Messages are JSON (never pickle); a task is
acknowledged only after it finished (`acks_late`), so a worker killed mid-audit leaves it to
be delivered again; a worker takes one task at a time ahead of what it is doing.
"""

from __future__ import annotations

from typing import Any

from auditor.errors import InputError

DEFAULT_QUEUE = "auditor"  # the queue of targets without a zone
TASK = "auditor.audit"  # collect and judge one target
COLLECT_TASK = "auditor.collect"  # collect one target's facts only (`auditor collect`)
BROKER_TIMEOUT = 10.0  # seconds to reach the broker before a run or a worker gives up
# Messages are plain JSON, written by orjson and read by the standard library's C decoder:
# an answer (a host's facts and results) is hundreds of KiB, and kombu's own JSON reads it
# through a Python hook per object, on the coordinator where every answer meets
# (perf/celery_perf.py). (orjson does not read them: it turns integers past 64 bits into
# floats.)
SERIALIZER = "auditor-json"


def make_app(broker: str, *, visibility_timeout: float = 3600.0, polled: bool = False) -> Any:
    """A Celery app on `broker` (redis://, rediss://, amqp://), the same URL as result
    backend for redis. `visibility_timeout`: seconds after which a task a worker took but
    never acknowledged (the worker died) is delivered again (Redis transport). `polled`:
    the coordinator's app, which reads answers from Redis by polling (fleet/results.py)."""
    try:
        from celery import Celery
    except ImportError:
        raise InputError(
            "distributed runs need Celery", hint="pip install 'auditor[fleet]'"
        ) from None

    redis = broker.startswith(("redis://", "rediss://"))
    backend = broker if redis else "rpc://"
    _register_serializer()
    if redis and polled:  # Celery's "CLASS+URL" form: its Redis backend, subclassed
        backend = f"auditor.fleet.results:PolledRedisBackend+{broker}"
    app = Celery("auditor", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer=SERIALIZER,
        result_serializer=SERIALIZER,
        accept_content=[SERIALIZER, "json"],  # json: Celery's control messages (ping)
        result_accept_content=[SERIALIZER, "json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        broker_connection_timeout=BROKER_TIMEOUT,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        broker_transport_options={"visibility_timeout": visibility_timeout},
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
        redis_socket_timeout=BROKER_TIMEOUT,
        redis_socket_connect_timeout=BROKER_TIMEOUT,
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,  # the worker says it is ready on stderr itself
        worker_send_task_events=True,  # monitors (celery events, Flower) see tasks taken
        task_track_started=True,  # the coordinator and tests see a task being audited
    )
    return app


def _register_serializer() -> None:
    """Teach kombu SERIALIZER (its documented extension point; idempotent)."""
    import json

    from kombu.serialization import register

    register(  # type: ignore[no-untyped-call]
        SERIALIZER,
        _dumps,
        json.loads,
        content_type="application/x-auditor+json",
        content_encoding="utf-8",
    )


def _dumps(message: Any) -> str:
    """JSON by orjson; what orjson refuses (an integer past 64 bits) by the standard library.
    Either writes a datetime as its ISO 8601 text."""
    import orjson

    try:
        return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        import json

        return json.dumps(message, default=str)
