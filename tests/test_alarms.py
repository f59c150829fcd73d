"""Alarms in a live server, with rooms in a worker process and real timers: firing, retries
with backoff, waking an evicted room. The same behaviours on the kit's clock, in process, are
in tests/test_room_runtime.py."""

from __future__ import annotations

import json

import pytest

from conftest import eventually


async def _runs(http, room):
    return json.loads((await http(f"parties/ticker/{room}")).body)


async def test_alarm_fires_once_with_room_id(http):
    assert (await http("parties/ticker/a1?in_ms=50", method="POST")).code == 200
    state = {}

    async def fired():
        state.update(await _runs(http, "a1"))
        return state["runs"]

    await eventually(fired)
    assert [run["room"] for run in state["runs"]] == ["a1"]
    await eventually(lambda: _alarm_cleared(http, "a1"))


@pytest.mark.party_config(alarm_retry_base=0.1)
async def test_failing_alarm_is_retried_with_backoff(http):
    await http("parties/ticker/a2?in_ms=10&fail=2", method="POST")
    runs = []

    async def three_runs():
        runs[:] = (await _runs(http, "a2"))["runs"]
        return len(runs) >= 3

    await eventually(three_runs)
    first_gap = runs[1]["at"] - runs[0]["at"]
    second_gap = runs[2]["at"] - runs[1]["at"]
    assert 0.09 <= first_gap < 1.0  # 0.1 s (alarm_retry_base, not the 2 s default), then
    assert second_gap >= 0.19  # 0.2 s: exponential backoff
    await eventually(lambda: _alarm_cleared(http, "a2"))
    assert len((await _runs(http, "a2"))["runs"]) == 3  # succeeded on the third run: no more


@pytest.mark.party_config(room_idle_timeout=0.05)
async def test_alarm_wakes_an_evicted_room(http, live_rooms):
    # The run lasts 0.3 s (hold_ms): the woken room stays live long enough to be seen.
    await http("parties/ticker/a3?in_ms=400&hold_ms=300", method="POST")
    await eventually(lambda: live_rooms.gone("ticker", "a3"), message="eviction")
    # Nothing but the alarm touches the room meanwhile: no request until it is live again.
    await eventually(lambda: live_rooms.has("ticker", "a3"), message="the alarm to wake the room")
    await eventually(lambda: _has_runs(http, "a3"))
    assert [run["room"] for run in (await _runs(http, "a3"))["runs"]] == ["a3"]


async def _alarm_cleared(http, room):
    return (await _runs(http, room))["alarm"] is None


async def _has_runs(http, room):
    return bool((await _runs(http, room))["runs"])
