"""The store writer's typed client mirrors the Store: every method it forwards to the child
exists on the Store and takes the same arguments."""

from __future__ import annotations

import inspect

import pytest

from auditor.store import Store
from auditor.store_writer import StoreWriter

FORWARDED = ["begin_run", "save_target", "save_results", "finish_run", "history",
             "previous_run", "load_document"]  # fmt: skip


def test_every_public_method_of_the_client_is_listed_here():
    own = {"opened", "close", "pid"}
    public = {n for n in vars(StoreWriter) if not n.startswith("_")} - own
    assert public == set(FORWARDED)


@pytest.mark.parametrize("name", FORWARDED)
def test_a_forwarded_call_binds_to_the_store_method(name):
    client = inspect.signature(getattr(StoreWriter, name))
    store = inspect.signature(getattr(Store, name))
    params = [p for p in client.parameters.values() if p.name not in ("self", "wait")]
    for param in params:
        assert param.name in store.parameters, f"Store.{name} has no {param.name}"
        assert param.kind == store.parameters[param.name].kind, param.name
    required = {p.name for p in store.parameters.values()
                if p.default is inspect.Parameter.empty and p.name != "self"}  # fmt: skip
    assert required <= {p.name for p in params}
