"""deployer.background: work started early (Background, Relay) and work off the critical path (Chores)."""

from __future__ import annotations

import math
import threading
import time

from deployer.background import Background, Chores, Relay, beside


def test_background_raises_its_error_where_the_result_is_taken():
    def boom() -> None:
        raise ValueError("late")

    work = Background(boom, name="t")
    try:
        work.result()
    except ValueError as e:
        assert str(e) == "late"
    else:
        raise AssertionError("the error was lost")


def test_relay_keeps_lines_until_attached():
    relay, seen = Relay(), []
    relay("one")
    relay.attach(seen.append)
    relay("two")
    assert seen == ["one", "two"]


def test_held_chores_wait_for_release_then_run_in_order():
    chores, ran = Chores(), []
    chores.hold()
    chores.add("a", "test", lambda say: ran.append("a"))
    chores.add("b", "push", lambda say: ran.append("b"))
    time.sleep(0.2)
    assert ran == []  # held: the critical path has the engine to itself
    chores.release()
    results = chores.finish(None)
    assert ran == ["a", "b"]
    assert [(r.name, r.stage, r.ok) for r in results] == [("a", "test", True), ("b", "push", True)]
    assert all(r.seconds is not None and r.seconds >= 0 for r in results)


def test_a_failing_chore_is_a_warning_and_the_next_one_still_runs():
    chores = Chores()

    def fails(say):
        say("pushing cache:test")
        raise OSError("connection refused")

    chores.add("cache", "test", fails)
    chores.add("tidy", "push", lambda say: say("removed 2 old"))
    first, second = chores.finish(None)
    assert not first.ok and first.lines == ("pushing cache:test", "failed: connection refused")
    assert second.ok and second.lines == ("removed 2 old",)


def test_finish_is_bounded_by_the_deadline_and_says_what_did_not_finish():
    chores, stop = Chores(), threading.Event()
    chores.add("slow", "push", lambda say: stop.wait(10))
    chores.add("next", "push", lambda say: None)
    started = time.monotonic()
    slow, never = chores.finish(time.monotonic() + 0.3)
    assert time.monotonic() - started < 2
    stop.set()
    assert not slow.ok and slow.finished is None and "--timeout ran out" in slow.lines[-1]
    assert (
        not never.ok
        and never.started is None
        and never.lines == ("not started: the ship's --timeout ran out",)
    )


def test_finish_releases_held_chores():
    chores, ran = Chores(), []
    chores.hold()
    chores.add("a", "test", lambda say: ran.append("a"))
    chores.finish(None)
    assert ran == ["a"]
    chores.add("late", "push", lambda say: ran.append("late"))  # after finish: not run
    assert ran == ["a"]


def test_finish_can_drop_what_is_still_held():
    chores, ran = Chores(), []
    chores.hold()
    chores.add("cache", "test", lambda say: ran.append("cache"))
    (dropped,) = chores.finish(None, drop_held="not run: the push never happened")
    assert ran == [] and dropped.started is None and dropped.lines == ("not run: the push never happened",)


def test_drop_held_leaves_released_chores_alone():
    chores, ran = Chores(), []
    chores.add("cache", "push", lambda say: ran.append("cache"))
    (done,) = chores.finish(None, drop_held="not run")
    assert ran == ["cache"] and done.ok


def test_wait_says_whether_the_work_finished_in_time():
    go = threading.Event()
    work = Background(lambda: go.wait(10) and "done", name="t")
    assert work.wait(0.05) is False and not work.done
    go.set()
    assert work.wait(5) is True and work.result() == "done"


def test_beside_names_the_stages_a_piece_of_work_overlapped():
    windows = {"test": (0.0, 4.0), "build": (4.0, 4.5), "push": (4.5, 5.0), "chart": (5.0, math.inf)}
    assert beside(1.0, 4.2, windows) == ["test", "build"]
    assert beside(4.6, 6.0, windows) == ["push", "chart"]  # a stage still running has no end yet
    assert beside(0.5, 1.5, windows) == ["test"]
