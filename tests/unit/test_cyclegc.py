"""The cycle collector is kept off objects it would traverse in vain, and only meanwhile."""

import gc

from auditor import cyclegc


def test_a_paused_step_turns_the_collector_back_on_only_if_it_was_on():
    assert gc.isenabled()
    with cyclegc.paused():
        assert not gc.isenabled()
        with cyclegc.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner step found it off and leaves it off
    assert gc.isenabled()


def test_a_settled_step_hides_what_was_alive_and_shows_it_again_after():
    before = gc.get_freeze_count()
    with cyclegc.settled():
        assert gc.get_freeze_count() > before  # start-up's objects: out of the collections
    assert gc.get_freeze_count() == 0  # and back in them: a cycle among them is still found
