"""Limits: inbound rate, awareness rate, dead peers, huge frames,
bad room ids, room capacity, and event-loop stall warnings."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import time

import psutil
import pytest
from test_slow_consumer import _raw_websocket, _read_frames
from ysupport import YClient

from conftest import eventually
from jupyter_party.protocol.ysync import (
    CUSTOM_PREFIX,
    AwarenessMessage,
    decode_awareness,
    parse_frame,
)
from jupyter_party.runtime import stall
from jupyter_party.runtime.ratelimit import STRIKE_WINDOW, RateLimiter

# -- helpers --------------------------------------------------------------------------------


def _frame(payload: bytes, opcode: int = 0x1, length: int | None = None) -> bytes:
    """A masked client frame (FIN set); `length` may lie about the payload's size."""
    length = len(payload) if length is None else length
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _has_connections(live_rooms, room: tuple[str, str], count: int) -> bool:
    return await live_rooms.connections(*room) == count


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# -- the rate limiter, without sockets ------------------------------------------------------


def test_message_bucket_allows_the_burst_then_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(100, 200, clock=clock)
    assert all(limiter.allow() for _ in range(200))
    assert not limiter.allow()
    clock.now += 0.5  # 50 messages' worth
    assert sum(limiter.allow() for _ in range(100)) == 50
    clock.now += 100  # never more than the burst
    assert sum(limiter.allow() for _ in range(1000)) == 200


def test_byte_bucket_averages_over_the_window():
    clock = FakeClock()
    mib = 1 << 20
    limiter = RateLimiter(0, 0, bytes_per_second=mib, bytes_window=3.0, clock=clock)
    assert all(limiter.allow(mib // 2) for _ in range(6))  # 3 MiB at once: the window
    assert not limiter.allow(1)
    clock.now += 1.0
    assert limiter.allow(mib)
    assert not limiter.allow(1024)
    clock.now += 10
    assert limiter.allow(16 * mib)  # larger than the window: accepted when full, empties it
    assert not limiter.allow(1)
    clock.now += 0.001
    assert limiter.allow(100)  # and small messages flow again as it refills


def test_disabled_limits_allow_everything():
    limiter = RateLimiter(0, 0, bytes_per_second=0, clock=FakeClock())
    assert not limiter.enabled
    assert all(limiter.allow(1 << 30) for _ in range(10_000))


def test_strikes_close_within_the_window_only():
    clock = FakeClock()
    limiter = RateLimiter(1, 1, strikes=3, clock=clock)
    assert [limiter.strike(), limiter.strike(), limiter.strike()] == [False, False, True]
    clock.now += STRIKE_WINDOW + 1
    assert not limiter.strike()  # forgiven: a new window
    clock.now += STRIKE_WINDOW / 2
    assert not limiter.strike()
    clock.now += STRIKE_WINDOW / 2 - 0.1
    assert limiter.strike()
    never = RateLimiter(1, 1, strikes=0, clock=clock)
    assert not any(never.strike() for _ in range(100))


# -- stall timing, without sockets ----------------------------------------------------------


async def test_timed_reports_each_blocking_step(caplog):
    async def hook():
        time.sleep(0.06)
        await asyncio.sleep(0)
        time.sleep(0.12)
        await asyncio.sleep(0)
        return 42

    with caplog.at_level(logging.WARNING, logger="jupyter_party"):
        assert await stall.Steps(0.1).timed(hook(), "p", "r", "on_alarm") == 42
    messages = [r.getMessage() for r in caplog.records if r.name == "jupyter_party"]
    assert len(messages) == 1  # the 0.06 s step is under the threshold
    assert messages[0].startswith("party 'p' room 'r': on_alarm blocked the event loop for 0.1")


async def test_timed_passes_exceptions_and_cancellation_through(caplog):
    async def fails():
        await asyncio.sleep(0)
        time.sleep(0.12)
        raise ValueError("boom")

    with (
        caplog.at_level(logging.WARNING, logger="jupyter_party"),
        pytest.raises(ValueError, match="boom"),
    ):
        await stall.Steps(0.1).timed(fails(), "p", "r", "on_message")
    assert any("on_message blocked" in r.getMessage() for r in caplog.records)

    cleaned = []

    async def slow():
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(True)

    task = asyncio.ensure_future(stall.Steps(0.1).run("p", "r", "on_alarm", slow))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]


# -- 1. inbound rate ------------------------------------------------------------------------


@pytest.mark.party_config(limit_owner=True)  # these clients use the Jupyter token
async def test_flooding_client_is_closed_with_1008_and_others_keep_their_latency(
    connect, live_rooms, jp_http_port, jp_base_url, jp_auth_header
):
    observer = await connect("parties/flood/f?_pk=observer")
    path = f"{jp_base_url}parties/flood/f?_pk=flooder"
    reader, writer = await _raw_websocket(jp_http_port, path, jp_auth_header)
    await eventually(lambda: _has_connections(live_rooms, ("flood", "f"), 2))
    closed = asyncio.ensure_future(_read_frames(reader))

    async def flood():  # 5,000 small messages, flat out, in chunks so pings interleave
        chunk = b"".join(_frame(b"x") for _ in range(100))
        for _ in range(50):
            if writer.is_closing() or closed.done():
                return
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(0)

    flooding = asyncio.ensure_future(flood())
    round_trips = []
    for n in range(100):
        start = time.perf_counter()
        await observer.send(f"ping:{n}")
        assert await observer.recv() == f"pong:{n}"
        round_trips.append(time.perf_counter() - start)
    await flooding
    _, code = await closed
    writer.close()
    assert code == 1008
    assert _p99(round_trips) < 0.5, round_trips
    await observer.send("count")
    counts = await observer.recv_json()
    assert counts["flooder"] < 1000  # the burst (200) and a little refill, not 5,000


@pytest.mark.party_config(rate_limit_burst=50, limit_owner=True)
async def test_messages_under_the_rate_are_all_delivered(connect):
    client = await connect("parties/flood/calm?_pk=calm")
    for _ in range(49):  # with "count", exactly the burst: none may be dropped
        await client.send("x")
    await client.send("count")
    assert await client.recv_json() == {"calm": 49}


@pytest.mark.party_config(rate_limit_bytes=10_000, rate_limit_window=1.0, limit_owner=True)
async def test_byte_rate_drops_then_closes(connect):
    client = await connect("parties/flood/bytes?_pk=big")
    for _ in range(5):  # 2 fit in the window; 3 are dropped, and the third drop closes
        await client.send("y" * 4000)
    code, reason = await client.closed()
    assert (code, reason) == (1008, "rate limit exceeded")
    other = await connect("parties/flood/bytes?_pk=other")
    await other.send("count")
    assert (await other.recv_json())["big"] == 2  # 8,000 of 10,000 bytes; then 3 strikes


# -- 2. awareness rate ----------------------------------------------------------------------


@pytest.mark.party_config(awareness_burst=5, awareness_rate=0.01, limit_owner=True)
async def test_awareness_over_the_rate_is_dropped_silently(connect):
    spammer = await YClient(await connect("parties/ydoc/aw")).sync()
    watcher = await connect("parties/ydoc/aw")
    for clock in range(1, 101):
        await spammer.set_awareness(7, clock, {"n": clock})
    await spammer.settled()  # the server handled all 100, and the spammer is still open
    seen = []
    await watcher.send(CUSTOM_PREFIX + "done")
    while (message := await watcher.recv()) != CUSTOM_PREFIX + "echo:done":
        if isinstance(message, bytes) and isinstance(
            parsed := parse_frame(message), AwarenessMessage
        ):
            seen += [e.clock for e in decode_awareness(parsed.update) if e.client == 7]
    assert seen == [1, 2, 3, 4, 5]  # the burst; the other 95 were neither kept nor forwarded
    assert spammer.states[7] == {"n": 5}
    await spammer.set_awareness(7, 101, {"n": 101})  # still connected, still rate-limited
    await spammer.settled()


# -- 3. dead peers ------------------------------------------------------------------------------


async def test_the_owner_is_not_rate_limited_by_default(connect):
    client = await connect("parties/flood/own?_pk=owner")  # the Jupyter user's own kernel
    for _ in range(1500):  # far past the burst (200) and the rate (100/s)
        await client.send("x")
    await client.send("count")
    assert await client.recv_json() == {"owner": 1500}


async def test_a_guest_with_a_share_link_is_rate_limited(connect, http):
    body = json.dumps({"party": "flood", "room": "guests", "access": "write"})
    token = json.loads((await http("party-api/share", method="POST", body=body)).body)["token"]
    guest = await connect(f"parties/flood/guests?_pk=guest&share_token={token}", auth=False)
    for _ in range(1500):
        if guest.ws.close_code is not None:
            break
        await guest.send("x")
    code, reason = await guest.closed()
    assert (code, reason) == (1008, "rate limit exceeded")


@pytest.mark.party_config(ping_interval=0.2, ping_timeout=0.2)
async def test_dead_peer_is_reaped(
    connect, http, live_rooms, jp_http_port, jp_base_url, jp_auth_header
):
    observer = await connect("parties/probe/dead?_pk=observer")
    await observer.recv_json()
    path = f"{jp_base_url}parties/probe/dead?_pk=zombie"
    _, writer = await _raw_websocket(jp_http_port, path, jp_auth_header)  # never reads again
    await eventually(lambda: _has_connections(live_rooms, ("probe", "dead"), 2))
    start = time.monotonic()
    # Tornado closes after a missed pong, then waits up to 5 s for the peer's close frame.
    left = await observer.recv_json(timeout=10)
    assert (left["type"], left["id"]) == ("left", "zombie")
    assert time.monotonic() - start < 8
    connections = json.loads((await http("parties/probe/dead/connections")).body)
    assert connections["ids"] == ["observer"]
    await observer.send({"op": "echo", "n": 1})  # the observer answers pings: still here
    assert await observer.recv_json() == {"type": "echo", "n": 1}
    writer.close()


def test_ping_timeout_is_capped_at_the_interval():
    from jupyter_party.web.websocket import Pinger

    assert (Pinger(5.0, 30.0).interval, Pinger(5.0, 30.0).timeout) == (5.0, 5.0)
    assert Pinger(5.0, 2.0).timeout == 2.0


# -- 4. huge frames and bad room ids --------------------------------------------------------


async def test_100_mb_frame_header_is_closed_with_1009_before_the_payload(
    connect, jp_http_port, jp_base_url, jp_auth_header
):
    rss = psutil.Process().memory_info().rss
    observer = await connect("parties/probe/huge?_pk=observer")
    await observer.recv_json()
    path = f"{jp_base_url}parties/probe/huge?_pk=huge"
    reader, writer = await _raw_websocket(jp_http_port, path, jp_auth_header)
    start = time.monotonic()
    header = _frame(b"", opcode=0x2, length=100_000_000)
    writer.write(header + os.urandom(4096))  # a few KB of the 100 MB it announced
    await writer.drain()
    _, code = await _read_frames(reader)  # Tornado writes the close frame, then aborts
    assert code == 1009
    assert await reader.read() == b""  # the server hung up
    assert time.monotonic() - start < 2
    left = await observer.recv_json()
    assert left["type"] == "left" and left["id"] == "huge"
    assert psutil.Process().memory_info().rss - rss < 20 << 20
    writer.close()


@pytest.mark.parametrize("room", ["x" * 10240, "%00", "a%00b"], ids=["10kb", "nul", "inner-nul"])
async def test_more_invalid_room_ids_are_refused(connect, http, live_rooms, room):
    response = await http(f"parties/probe/{room}")
    assert response.code in (400, 404)
    client = await connect(f"parties/probe/{room}")
    assert (await client.closed())[0] == 4400
    assert await live_rooms() == set()


async def test_double_slash_room_path_is_refused(connect, http, live_rooms):
    response = await http("parties/probe//evil")
    assert response.code in (400, 404)
    assert "Location" not in response.headers
    try:
        client = await connect("parties/probe//evil")
    except Exception as error:  # refused at the handshake (no route): fine too
        assert getattr(error, "code", None) in (400, 404), error
    else:
        assert (await client.closed())[0] in (4400, 4404)
    assert await live_rooms() == set()


# -- 5. capacity ----------------------------------------------------------------------------


@pytest.mark.party_config(max_connections_per_room=2)
async def test_full_room_refuses_with_1013(connect):
    a = await connect("parties/probe/full?_pk=a")
    b = await connect("parties/probe/full?_pk=b")
    await a.recv_json()
    await b.recv_json()
    c = await connect("parties/probe/full?_pk=c")
    assert await c.closed() == (1013, "room is full")
    await a.send({"op": "connections"})
    assert await a.recv_json() == {"type": "connections", "ids": ["a", "b"]}
    other = await connect("parties/probe/other-room?_pk=c")  # other rooms are unaffected
    assert (await other.recv_json())["type"] == "welcome"


@pytest.mark.party_config(max_rooms=1)
async def test_max_rooms_refuses_new_rooms(connect, http, live_rooms, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_party")
    first = await connect("parties/probe/one")
    await first.recv_json()
    second = await connect("parties/probe/two")
    code, reason = await second.closed()
    assert code == 1013 and "too many rooms" in reason
    response = await http("parties/probe/three")
    assert response.code == 503
    assert "too many rooms" in json.loads(response.body)["error"]
    assert (await http("parties/probe/one")).code == 200  # the live room still answers
    assert await live_rooms() == {("probe", "one")}
    # The operator is told once, not once per refusal (the next report is a minute away).
    messages = [r.getMessage() for r in caplog.records if r.name == "jupyter_party"]
    refusals = [m for m in messages if "(max_rooms)" in m]
    assert refusals == ["refused 1 new room(s): 1 rooms are live, the limit (max_rooms)"]


# -- 6. event-loop stalls -------------------------------------------------------------------


async def test_blocking_hooks_are_logged(connect, http, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_party")
    client = await connect("parties/stall/r")
    await client.send("fast")
    assert await client.recv() == "done:fast"
    await client.send("sync")
    assert await client.recv() == "done:sync"
    assert (await http("parties/stall/r")).code == 200
    messages = [r.getMessage() for r in caplog.records if r.name == "jupyter_party"]
    stalls = [m for m in messages if "blocked the event loop" in m]
    prefix = "party 'stall' room 'r': "
    assert len(stalls) == 3, stalls
    assert stalls[0].startswith(prefix + "on_start blocked the event loop for 0.1")
    assert stalls[1].startswith(prefix + "on_message blocked the event loop for 0.3")
    assert stalls[2].startswith(prefix + "on_request blocked the event loop for 0.2")
    assert all(r.levelno == logging.WARNING for r in caplog.records if "blocked" in r.getMessage())


@pytest.mark.party_config(stall_warning=0)
async def test_stall_warnings_can_be_turned_off(connect, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_party")
    client = await connect("parties/stall/quiet")
    await client.send("sync")
    assert await client.recv() == "done:sync"
    assert not [r for r in caplog.records if "blocked the event loop" in r.getMessage()]


def test_limits_are_all_configurable():
    from dataclasses import fields

    from jupyter_party.extension import PartyApp
    from jupyter_party.runtime.host import Limits

    traits = PartyApp.class_traits(config=True)
    for field in fields(Limits):
        assert field.name in traits, f"Limits.{field.name} has no PartyApp trait"
        assert traits[field.name].default_value == field.default, field.name
        assert traits[field.name].help, f"PartyApp.{field.name} has no help text"
