"""Alarms in a live server: firing, retries with backoff, waking an evicted room."""

from __future__ import annotations

import json

from conftest import eventually


async def _runs(http, room):
    return json.loads((await http(f"parties/ticker/{room}")).body)


async def test_alarm_fires_once_with_room_id(http):
    assert (await http("parties/ticker/a1?in_ms=50", method="POST")).code == 200
    state = {}

    async def fired():
        state.update(await _runs(http, "a1"))
        return state["runs"]

    await _poll(fired)
    assert [run["room"] for run in state["runs"]] == ["a1"]
    await _poll(lambda: _alarm_cleared(http, "a1"))


async def test_failing_alarm_is_retried_with_backoff(http, host):
    host.alarms.retry_base = 0.1
    await http("parties/ticker/a2?in_ms=10&fail=2", method="POST")
    runs = []

    async def three_runs():
        runs[:] = (await _runs(http, "a2"))["runs"]
        return len(runs) >= 3

    await _poll(three_runs)
    first_gap = runs[1]["at"] - runs[0]["at"]
    second_gap = runs[2]["at"] - runs[1]["at"]
    assert first_gap >= 0.09  # 0.1 s, then 0.2 s: exponential backoff
    assert second_gap >= 0.19
    await _poll(lambda: _alarm_cleared(http, "a2"))
    assert len((await _runs(http, "a2"))["runs"]) == 3  # succeeded on the third run: no more


async def test_alarm_wakes_an_evicted_room(http, host):
    host.limits.room_idle_timeout = 0.05
    await http("parties/ticker/a3?in_ms=400", method="POST")
    await eventually(lambda: ("ticker", "a3") not in host.rooms, message="eviction")
    await eventually(lambda: ("ticker", "a3") in host.rooms, message="the alarm to wake the room")
    await _poll(lambda: _has_runs(http, "a3"))
    assert [run["room"] for run in (await _runs(http, "a3"))["runs"]] == ["a3"]


async def _alarm_cleared(http, room):
    return (await _runs(http, room))["alarm"] is None


async def _has_runs(http, room):
    return bool((await _runs(http, room))["runs"])


async def _poll(check, timeout: float = 10.0):
    """`eventually` for async checks."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        await asyncio.sleep(0.02)
