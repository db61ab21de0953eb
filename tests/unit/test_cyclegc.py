"""The run's one policy for the cycle collector: off by itself during a run, collections at
target boundaries, everything as before afterwards."""

import gc

from auditor import cyclegc


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _cycles_alive() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, _Cycle))


def test_a_run_turns_the_collector_off_and_back_on():
    assert gc.isenabled()
    before = gc.get_freeze_count()
    with cyclegc.run_policy():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > before  # start-up's objects: out of the collections
    assert gc.isenabled()
    assert gc.get_freeze_count() == before  # and back in them: a cycle among them is found


def test_cycle_garbage_is_collected_at_target_boundaries():
    with cyclegc.run_policy() as collector:
        for _ in range(1000):
            _Cycle()
        assert _cycles_alive() == 1000  # nothing collects them by itself during a run
        collector.target_done()
        assert _cycles_alive() == 0


def test_a_run_of_answers_collects_nothing():
    """Decoded answers hold no cycles: no collection walks them during the run."""
    with cyclegc.run_policy(makes_cycles=False) as collector:
        for _ in range(10):
            _Cycle()
        for _ in range(cyclegc.FULL_EVERY + 1):
            collector.target_done()
        assert _cycles_alive() == 10
    gc.collect()
    assert _cycles_alive() == 0


def test_every_so_many_targets_everything_is_collected():
    with cyclegc.run_policy() as collector:
        held = _Cycle()
        gc.collect(1)  # still referenced: it moves to the oldest generation
        del held  # now garbage, but past the young generations that each target collects
        counts = []
        for _ in range(cyclegc.FULL_EVERY):
            counts.append(_cycles_alive())
            collector.target_done()
        assert counts[0] == 1 and _cycles_alive() == 0


def test_what_survives_a_full_collection_is_not_traversed_again():
    """A run keeps its finished targets: after a full collection they are frozen, so the
    next full collections do not walk them again (the cost would grow with the run's square)."""
    with cyclegc.run_policy() as collector:
        kept = [_Cycle() for _ in range(100)]
        frozen = gc.get_freeze_count()
        for _ in range(cyclegc.FULL_EVERY):
            collector.target_done()
        assert gc.get_freeze_count() >= frozen + len(kept)
        assert not any(isinstance(o, _Cycle) for o in gc.get_objects())  # out of its sight
    assert _cycles_alive() == len(kept)  # after the run: back in the collector's sight


def test_nothing_is_collected_after_the_last_target():
    """The run is over: a collection then would only walk what the run made, for nothing."""
    with cyclegc.run_policy(2) as collector:
        _Cycle()
        collector.target_done()
        assert _cycles_alive() == 0  # the first of two targets: collected
        _Cycle()
        collector.target_done()
        assert _cycles_alive() == 1  # the last: left to the collector after the run
        made = [{} for _ in range(10_000)]
        collections = [s["collections"] for s in gc.get_stats()]
    # what the run made went to the oldest generation with nothing walked: re-enabled, the
    # collector does not start by walking the whole run at the next allocation
    after = [{} for _ in range(100)]
    assert [s["collections"] for s in gc.get_stats()] == collections
    assert len(made) + len(after) == 10_100
    gc.collect()
    assert _cycles_alive() == 0


def test_what_a_run_holds_is_out_of_sight_while_its_reports_are_made():
    """The reports' own cycle garbage is collected as usual; the run's results, held by then,
    are not walked by those collections; afterwards they are in sight again."""
    held = [_Cycle() for _ in range(100)]
    with cyclegc.held_out_of_sight():
        assert gc.isenabled()
        assert not any(isinstance(o, _Cycle) for o in gc.get_objects())  # out of its sight
        for _ in range(10):
            _Cycle()
        gc.collect()
        assert gc.get_freeze_count() >= len(held)
    assert gc.get_freeze_count() == 0
    assert _cycles_alive() == len(held)  # the reports' ten were collected, the run's are seen
    del held
    gc.collect()
    assert _cycles_alive() == 0
