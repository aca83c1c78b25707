"""The benchmark's fixed list poller: one list call per interval while any job is open, so
jobs that overlap share calls and jobs apart pay their own."""

from __future__ import annotations

from bench.polling import Trace, fixed_list


def trace(arrival: float, duration: float) -> Trace:
    return Trace(arrival, 10, duration, arrival, ((arrival, 0.0), (arrival + duration, 1.0)), None)


def test_overlapping_jobs_share_the_ticks_and_a_lone_job_pays_its_own() -> None:
    # Ticks every 10 s: the first job is open over ticks 0-3, the second (inside it) over 2-3,
    # the third alone over 10-11: six list calls for three jobs.
    jobs = [trace(0, 25), trace(12, 10), trace(100, 5)]

    calls, delays = fixed_list(jobs, 10.0)

    assert calls == 2.0
    assert delays == [5.0, 8.0, 5.0]


def test_jobs_back_to_back_are_not_counted_twice_at_the_tick_between() -> None:
    calls, _ = fixed_list([trace(0, 20), trace(20, 20)], 10.0)

    assert calls == 2.5  # ticks 0-2 and 2-4: five calls, tick 2 seen by both
