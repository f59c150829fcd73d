"""The load generator: one process of minimal WebSocket clients, run once per (scenario, server).

Usage: python loadgen.py SPEC_JSON   (prints one JSON object, the result, on its last line)

The clients are a bare `asyncio.Protocol` (uvloop when installed): each TCP read is parsed for
all the frames it holds in one loop, and client frames use an all-zero mask (valid framing,
nothing to XOR), so the generator stays cheap. It reports its own CPU time over each measured
window next to the server's (the server's whole process tree, via psutil), so a reader can see
whether the load generator or the server was the bottleneck.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a test dependency of the project
    psutil = None

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
MASK = b"\x00\x00\x00\x00"
CONNECT_TIMEOUT = 30.0


def client_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + MASK + payload


class Client(asyncio.Protocol):
    """One WebSocket client. `on_frames(client, payloads)` gets every data frame of one read."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.closed = False
        self.buf = b""  # an incomplete frame's start; with `parts`, what came since
        self.parts: list[bytes] = []
        self.have = self.need = 0  # bytes in `parts`, bytes needed to parse on
        self.count = 0
        self.tag: Any = None
        self.sent = 0  # perf_counter_ns of the last message sent (the cpu scenario)
        self.on_frames: Callable[[Client, list[bytes]], None] | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code = 1006  # until the server's close frame says otherwise
        self.closing = False  # we sent the close frame first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        if self.buf:  # the start of an incomplete frame: join once it can be complete
            self.parts.append(data)
            self.have += len(data)
            if self.have < self.need:
                return
            data = b"".join(self.parts)
            self.buf, self.parts = b"", []
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf, self.parts, self.have, self.need = data, [data], len(data), len(data) + 1
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(None)
            data = data[end + 4 :]
        i, n = 0, len(data)
        payloads = []
        need = 0  # the bytes an incomplete frame at i needs (at least) before parsing on
        while n - i >= 2:
            b0, length = data[i], data[i + 1] & 0x7F
            h = 2
            if length == 126:
                if n - i < 4:
                    need = 4
                    break
                length, h = int.from_bytes(data[i + 2 : i + 4], "big"), 4
            elif length == 127:
                if n - i < 10:
                    need = 10
                    break
                length, h = int.from_bytes(data[i + 2 : i + 10], "big"), 10
            if n - i < h + length:
                need = h + length
                break
            opcode = b0 & 0x0F
            if opcode in (TEXT, BINARY):
                payloads.append(data[i + h : i + h + length])
            elif opcode == PING:
                self.transport.write(client_frame(data[i + h : i + h + length], PONG))
            elif opcode == CLOSE:  # the server's: answer it (unless we started), hang up
                self.closed = True
                body = data[i + h : i + h + min(length, 2)]
                self.close_code = int.from_bytes(body, "big") if len(body) == 2 else 1005
                if not self.closing:
                    self.transport.write(client_frame(body, CLOSE))
                self.transport.close()
            i += h + length
        if i < n:  # an incomplete frame: wait for all of it (a large one comes in many reads)
            self.buf = data[i:]
            self.parts, self.have, self.need = [self.buf], n - i, need or 2
        if payloads:
            self.count += len(payloads)
            if self.on_frames is not None:
                self.on_frames(self, payloads)

    def send(self, payload: bytes, opcode: int = TEXT) -> None:
        self.transport.write(client_frame(payload, opcode))

    def send_many(self, payloads: list[bytes], opcode: int = TEXT) -> None:
        self.transport.write(b"".join([client_frame(p, opcode) for p in payloads]))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def close(self, timeout: float = 10.0) -> None:
        """The closing handshake: a close frame (1000), then the server's, then its FIN."""
        self.closing = True
        self.send((1000).to_bytes(2, "big"), CLOSE)
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), timeout)
        finally:
            self.abort()


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host = spec.get("host", "127.0.0.1")
        self.port = spec["port"]
        # A party cluster's nodes: connections alternate between them (first on `port`).
        self.ports = spec.get("ports") or [self.port]
        self.opened = 0
        self.prefix = spec["prefix"]  # e.g. "/parties/bcast/"
        self.query = spec.get("query", "")
        self.headers = spec.get("headers", {})
        self.clients: list[Client] = []
        self.server = ServerStats(spec.get("server_pids", []))
        self.warm_up_rounds = 0  # the most warm-up rounds one all_in_room needed

    def url(self, room: str) -> str:
        return f"{self.prefix}{room}{self.query}"

    async def connect(self, room: str) -> Client:
        loop = asyncio.get_running_loop()
        port = self.ports[self.opened % len(self.ports)]
        self.opened += 1
        client = Client(self.host, port, self.url(room), self.headers)
        await loop.create_connection(lambda: client, self.host, port)
        await asyncio.wait_for(client.opened, CONNECT_TIMEOUT)
        self.clients.append(client)
        return client

    async def connect_many(self, rooms: list[str], concurrency: int) -> list[Client]:
        out: list[Client | None] = [None] * len(rooms)
        queue = iter(enumerate(rooms))

        async def worker() -> None:
            for index, room in queue:
                out[index] = await self.connect(room)

        await asyncio.gather(*[worker() for _ in range(min(concurrency, len(rooms)))])
        return out  # type: ignore[return-value]

    def close_all(self) -> None:
        for client in self.clients:
            client.abort()
        self.clients = []

    async def all_in_room(
        self, senders: list[Client], receivers: list[Client], timeout: float = 60.0
    ) -> int:
        """Warm-up: a message from every sender must reach every receiver, proving all are in
        the room; returns how many receivers it never reached within `timeout`.

        A 101 does not prove it: the room admits a socket (`on_connect`) after the handshake,
        and with rooms in a worker process a broadcast handled meanwhile misses the socket. So
        warm-up rounds, each tagged with its number, are repeated until one reaches everyone
        (a round's messages reach a receiver after those of every earlier round, so none of
        them is still on its way when the measured window starts)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempt, missing = 0, len(receivers)
        while True:
            tag = b"warm-%d-" % attempt
            seen: dict[Client | None, int] = {}  # None: how many receivers are complete
            done = loop.create_future()

            def on_frames(client: Client, payloads: list[bytes], tag=tag, seen=seen, done=done):
                before = seen.get(client, 0)
                seen[client] = n = before + sum(1 for p in payloads if p.startswith(tag))
                if before < len(senders) <= n:  # this receiver is complete
                    seen[None] = seen.get(None, 0) + 1
                    if seen[None] == len(receivers) and not done.done():
                        done.set_result(None)

            for c in receivers:
                c.on_frames = on_frames
            for i, s in enumerate(senders):
                s.send(tag + b"%d" % i)
            wait = min(0.5 * 2**attempt, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done, max(wait, 0.01))
            missing = len(receivers) - seen.get(None, 0)
            if not missing or loop.time() >= deadline:
                self.warm_up_rounds = max(self.warm_up_rounds, attempt + 1)
                for c in receivers:
                    c.on_frames = None
                return missing
            attempt += 1

    async def all_greeted(self, clients: list[Client], timeout: float) -> int:
        """Wait until every client got a frame (a Y server's sync step 1, sent by its
        `on_connect`: the connection is admitted); returns how many did not."""
        deadline = asyncio.get_running_loop().time() + timeout
        while any(c.count == 0 for c in clients):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)  # the count is a plain field: poll it
        return sum(1 for c in clients if c.count == 0)

    # -- scenarios ----------------------------------------------------------------------------

    async def fanout(self) -> dict[str, Any]:
        """S senders blast M messages each into a room of R receivers (and the senders): every
        message reaches every connection. Deliveries counted at the R receivers."""
        spec = self.spec
        receivers_n, senders_n = spec["receivers"], spec["senders"]
        messages, rounds, size = spec["messages"], spec["rounds"], spec.get("size", 64)
        timeout = spec.get("timeout", 120.0)
        results = []
        for r in range(rounds):
            room = f"fanout-{os.getpid()}-{r}"
            receivers = await self.connect_many([room] * receivers_n, 50)
            senders = await self.connect_many([room] * senders_n, 50)
            everyone = receivers + senders
            state: dict[str, Any] = {}

            def counted(client: Client, payloads: list[bytes], state=state) -> None:
                state["total"] += len(payloads)
                if state["total"] >= state["target"] and not state["done"].done():
                    state["done"].set_result(None)

            # Warm-up: a message of every sender must reach every receiver before the clock runs.
            if missing := await self.all_in_room(senders, receivers, timeout):
                raise RuntimeError(f"warm-up never reached {missing} of the receivers")
            await asyncio.sleep(0.2)
            for c in receivers:
                c.on_frames = counted
            state["total"] = 0
            state["target"] = receivers_n * senders_n * messages
            state["done"] = done = asyncio.get_running_loop().create_future()
            pad = b"x" * size
            with self.window() as w:
                for burst in range(0, messages, 50):
                    for i, s in enumerate(senders):
                        s.send_many(
                            [
                                (b"%d:%d:" % (i, k) + pad)[:size]
                                for k in range(burst, min(burst + 50, messages))
                            ]
                        )
                    await asyncio.sleep(0)
                lost = 0
                try:
                    await asyncio.wait_for(done, timeout)
                except TimeoutError:
                    lost = state["target"] - state["total"]
            results.append(
                {
                    "deliveries": state["total"],
                    "lost": lost,
                    "seconds": w.wall,
                    "deliveries_per_s": state["total"] / w.wall,
                    **w.cpu,
                }
            )
            for c in everyone:
                c.abort()
            self.clients = []
            await asyncio.sleep(0.3)
        return summarize(results, "deliveries_per_s")

    async def paced(self) -> dict[str, Any]:
        """One sender at `rate` msg/s for `seconds` into a room of R receivers: latency of each
        delivery (send time stamped in the message, same clock)."""
        spec = self.spec
        room = f"paced-{os.getpid()}"
        receivers = await self.connect_many([room] * spec["receivers"], 50)
        sender = await self.connect(room)
        samples: list[int] = []

        def on_frames(client: Client, payloads: list[bytes]) -> None:
            now = time.perf_counter_ns()
            for p in payloads:
                if p.startswith(b"t"):
                    samples.append(now - int(p[1:20]))

        if missing := await self.all_in_room([sender], receivers, 30):
            raise RuntimeError(f"warm-up never reached {missing} of the receivers")
        for c in receivers:
            c.on_frames = on_frames
        rate, seconds = spec["rate"], spec["seconds"]
        total = int(rate * seconds)
        pad = b"x" * 64
        loop = asyncio.get_running_loop()
        with self.window() as w:
            start = loop.time()
            for k in range(total):
                delay = start + k / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sender.send((b"t%019d:" % time.perf_counter_ns() + pad)[:64])
            deadline = loop.time() + 10
            expected = total * len(receivers)
            while len(samples) < expected and loop.time() < deadline:
                await asyncio.sleep(0.01)
        self.close_all()
        samples.sort()
        ms = [s / 1e6 for s in samples]
        return {
            "deliveries": len(samples),
            "lost": expected - len(samples),
            "p50_ms": pct(ms, 50),
            "p99_ms": pct(ms, 99),
            "max_ms": ms[-1] if ms else None,
            "deliveries_per_s": len(samples) / w.wall,
            **w.cpu,
        }

    async def idle(self) -> dict[str, Any]:
        """N idle connections in one room: growth of the server's RSS per connection, after a
        broadcast proved every connection is in the room."""
        spec = self.spec
        n = spec["connections"]
        room = f"idle-{os.getpid()}"
        first = await self.connect(room)
        if spec.get("y"):
            first.send(b"\x00\x00\x01\x00", BINARY)  # sync step 1: the room has started
        else:
            first.send(b"hello")
        await asyncio.sleep(1.0)
        before, before_children = self.server.rss(), self.server.rss(children_only=True)
        t0 = time.perf_counter()
        clients = [first, *await self.connect_many([room] * (n - 1), spec.get("concurrency", 64))]
        connect_s = time.perf_counter() - t0
        if spec.get("y"):  # a Y room: every connection got the server's sync step 1
            lost = await self.all_greeted(clients, 60)
        else:  # every connection is in the room (one broadcast, repeated if need be, reached it)
            lost = await self.all_in_room([first], clients, 60)
        await asyncio.sleep(2.0)
        after, after_children = self.server.rss(), self.server.rss(children_only=True)
        self.close_all()
        return {
            "connections": n,
            "lost": lost,
            "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20,
            "kb_per_connection": (after - before) / (n - 1) / 1024,
            # of which in the server's child processes (party workers, workerd)
            "children_kb_per_connection": (after_children - before_children) / (n - 1) / 1024,
            "connect_per_s": (n - 1) / connect_s,
        }

    async def coldstart(self) -> dict[str, Any]:
        """Open N connections to N new rooms (`concurrency` at a time); each sends a message and
        waits for its echo, so the room has started and handled an event. With `hold`, the
        connections stay open and the growth of the server's RSS per room is measured. A room
        refused (a close instead of the echo: past `max_rooms`, 1013) is counted, not waited
        for."""
        spec = self.spec
        n, concurrency = spec["rooms"], spec.get("concurrency", 50)
        before = self.server.rss(), self.server.rss(children_only=True)
        tag = f"cold-{os.getpid()}-{time.time_ns()}"
        latencies: list[float] = []
        refused: collections.Counter[int] = collections.Counter()  # by close code
        rooms = iter(range(n))

        async def worker() -> None:
            for i in rooms:
                t = time.perf_counter()
                client = await self.connect(f"{tag}-{i}")
                got = asyncio.get_running_loop().create_future()
                client.on_frames = lambda c, p, got=got: got.done() or got.set_result(None)
                if not client.lost.done():  # a refusal can come with the 101
                    client.send(b"hello")
                ended = [got, client.lost]
                done, _ = await asyncio.wait(ended, timeout=30, return_when=asyncio.FIRST_COMPLETED)
                if got not in done:
                    if not done:
                        raise TimeoutError(f"room {i}: neither its echo nor a close in 30 s")
                    refused[client.close_code] += 1
                    continue
                latencies.append((time.perf_counter() - t) * 1000)

        with self.window() as w:
            await asyncio.gather(*[worker() for _ in range(concurrency)])
        opened = n - sum(refused.values())
        held = {}
        if spec.get("hold"):
            await asyncio.sleep(2.0)  # as idle does, before reading the RSS
            after = self.server.rss(), self.server.rss(children_only=True)
            held = {
                "kb_per_room": (after[0] - before[0]) / opened / 1024,
                "children_kb_per_room": (after[1] - before[1]) / opened / 1024,
                "rss_after_mb": after[0] / 2**20,
            }
        self.close_all()
        latencies.sort()
        return {
            **held,
            "rooms": opened,
            "refused": dict(refused),
            "rooms_per_s": opened / w.wall,
            "p50_ms": pct(latencies, 50),
            "p99_ms": pct(latencies, 99),
            **w.cpu,
        }

    async def crdt(self) -> dict[str, Any]:
        """One client sends M Yjs updates (y-websocket sync frames) into a fresh room of R
        clients; the server applies each and fans it out. Deliveries counted at the R clients."""
        spec = self.spec
        frames = [b"\x00\x02" + varuint(len(u)) + u for u in read_updates(spec["updates_file"])]
        results = []
        for r in range(spec["rounds"]):
            room = f"crdt-{os.getpid()}-{r}"
            receivers = await self.connect_many([room] * spec["receivers"], 20)
            sender = await self.connect(room)
            state: dict[str, Any] = {"total": 0, "target": len(receivers)}
            state["done"] = done = asyncio.get_running_loop().create_future()

            def on_frames(client: Client, payloads: list[bytes], state=state) -> None:
                for p in payloads:
                    if p[:2] == b"\x00\x02":
                        state["total"] += 1
                if state["total"] >= state["target"] and not state["done"].done():
                    state["done"].set_result(None)

            # Every receiver is in the room once the server's sync step 1 reached it (sent by
            # `on_connect`); then the first update must reach everyone.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while any(c.count == 0 for c in [*receivers, sender]) and loop.time() < deadline:
                await asyncio.sleep(0.01)
            for c in receivers:
                c.on_frames = on_frames
            sender.send(frames[0], BINARY)  # warm-up: the first update reaches everyone
            await asyncio.wait_for(done, 30)
            await asyncio.sleep(0.2)
            state["total"] = 0
            state["target"] = len(receivers) * (len(frames) - 1)
            state["done"] = done = asyncio.get_running_loop().create_future()
            lost = 0
            with self.window() as w:
                for k in range(1, len(frames), 50):
                    sender.send_many(frames[k : k + 50], BINARY)
                    await asyncio.sleep(0)
                try:
                    await asyncio.wait_for(done, spec.get("timeout", 120.0))
                except TimeoutError:
                    lost = state["target"] - state["total"]
            results.append(
                {
                    "deliveries": state["total"],
                    "lost": lost,
                    "seconds": w.wall,
                    "deliveries_per_s": state["total"] / w.wall,
                    "updates_per_s": (len(frames) - 1) / w.wall,
                    **w.cpu,
                }
            )
            self.close_all()
            await asyncio.sleep(0.3)
        return summarize(results, "deliveries_per_s")

    async def storage(self) -> dict[str, Any]:
        """C clients in `rooms` rooms each put a key, wait for the ack (sent once the write is
        durable), and repeat for `seconds`."""
        spec = self.spec
        clients_n, rooms_n, seconds = spec["clients"], spec["rooms"], spec["seconds"]
        tag = f"store-{os.getpid()}"
        clients = await self.connect_many([f"{tag}-{i % rooms_n}" for i in range(clients_n)], 50)
        latencies: list[float] = []
        loop = asyncio.get_running_loop()
        stop_at = 0.0

        async def writer(index: int, client: Client) -> None:
            k = 0
            while loop.time() < stop_at:
                got = loop.create_future()
                client.on_frames = lambda c, p, got=got: got.done() or got.set_result(None)
                t = time.perf_counter()
                client.send(b"c%d-k%d" % (index, k))
                await asyncio.wait_for(got, 30)
                latencies.append((time.perf_counter() - t) * 1000)
                k += 1

        with self.window() as w:
            stop_at = loop.time() + seconds
            await asyncio.gather(*[writer(i, c) for i, c in enumerate(clients)])
        self.close_all()
        latencies.sort()
        return {
            "puts": len(latencies),
            "puts_per_s": len(latencies) / w.wall,
            "p50_ms": pct(latencies, 50),
            "p99_ms": pct(latencies, 99),
            **w.cpu,
        }

    async def stream(self) -> dict[str, Any]:
        """One client sends `rate` messages/s for `seconds` into room `room` (in bursts every
        10 ms), and waits for the room's broadcast of each (the widgets benchmark: a console
        is open on the same room meanwhile)."""
        spec = self.spec
        client = await self.connect(spec["room"])
        loop = asyncio.get_running_loop()
        state = {"echoed": 0, "target": round(spec["rate"] * spec["seconds"])}
        done = loop.create_future()

        def on_frames(client: Client, payloads: list[bytes]) -> None:
            state["echoed"] += sum(1 for p in payloads if p.startswith(b"load "))
            if state["echoed"] >= state["target"] and not done.done():
                done.set_result(None)

        client.on_frames = on_frames
        with self.window() as w:
            start, sent = loop.time(), 0
            while sent < state["target"]:
                due = min(state["target"], round((loop.time() - start) * spec["rate"]) + 1)
                client.send_many([b"load %d" % k for k in range(sent, due)])
                sent = due
                await asyncio.sleep(0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done, 30)
        return {
            "sent": sent,
            "lost": sent - state["echoed"],
            "messages_per_s": sent / w.wall,
            "seconds": w.wall,
            **w.cpu,
        }

    async def storm(self) -> dict[str, Any]:
        """Reconnect storm: `clients` in one room, then an `event` closes them all: `redeploy`
        (the party's source posted again: its rooms stop, clients get 1012) or `kill` (the
        runner kills the server with SIGKILL and starts it again, told on stdin/stdout). Every
        client reconnects by its `policy`; once the event has happened, a numbered message is
        broadcast every 100 ms by the first client back since then (still open). Figure: seconds
        from the event until every client has received one of them (it is back in the room,
        and the room works); `lost`: clients that had not after `timeout`.

        Policies: `jupyter-party` (its RoomClient: after 1012 at once, within 0-50 ms; after a
        failure 0.1 s doubling to 5 s, x0.5-1 jitter) and `partysocket` (its defaults: a
        first delay of 1-5 s, random per socket, then x1.3 per failure up to 10 s)."""
        spec = self.spec
        n, policy, event = spec["clients"], spec["policy"], spec["event"]
        loop = asyncio.get_running_loop()
        room = f"storm-{os.getpid()}"
        url = self.url(room)
        state: dict[str, Any] = {"after": False, "back": {}, "attempts": 0, "t0": None}
        back_first: list[Client] = []  # connections opened since the event, in order
        closed: list[float] = []  # seconds from the event until each client saw its close
        reopened: list[float] = []  # ... until each new connection had its 101
        all_back = loop.create_future()

        def delay(attempt: int, code: int, first: float) -> float:
            if policy == "partysocket":
                return min(first * 1.3 ** max(attempt - 1, 0), 10.0)
            if code == 1012 and attempt == 1:
                return random.uniform(0, 0.05)
            return min(0.1 * 2 ** (attempt - 1), 5.0) * random.uniform(0.5, 1.0)

        def on_frames(client: Client, payloads: list[bytes]) -> None:
            back = state["back"]
            if not state["after"] or client.tag in back:
                return
            if any(p.startswith(b"after ") for p in payloads):
                back[client.tag] = loop.time() - state["t0"]
                if len(back) == n and not all_back.done():
                    all_back.set_result(None)

        async def member(index: int | None, joined: asyncio.Future[Client]) -> None:
            """One reconnecting client (index None: the prober)."""
            first, attempt = 1.0 + 4.0 * random.random(), 0
            while True:
                client = Client(self.host, self.port, url, self.headers)
                client.tag, client.on_frames = index, (on_frames if index is not None else None)
                state["attempts"] += 1
                try:
                    await loop.create_connection(lambda c=client: c, self.host, self.port)
                    await asyncio.wait_for(client.opened, CONNECT_TIMEOUT)
                except (OSError, ConnectionError, TimeoutError):
                    client.abort()
                    attempt += 1
                    await asyncio.sleep(delay(attempt, 1006, first))
                    continue
                if not joined.done():
                    joined.set_result(client)
                else:
                    sessions[index] = client
                    if state["t0"] is not None:
                        reopened.append(loop.time() - state["t0"])
                        back_first.append(client)
                await client.lost
                if state["t0"] is not None:
                    closed.append(loop.time() - state["t0"])
                attempt = 1  # after a connection that lasted: the first retry
                await asyncio.sleep(delay(attempt, client.close_code, first))

        sessions: dict[int | None, Client] = {}
        joins = [loop.create_future() for _ in range(n + 1)]
        tasks = [loop.create_task(member(i, joins[i])) for i in range(n)]
        tasks.append(loop.create_task(member(None, joins[n])))
        try:
            clients = await asyncio.wait_for(asyncio.gather(*joins), 300)
            sessions.update({c.tag: c for c in clients})
            if missing := await self.all_in_room([sessions[None]], clients[:n], 60):
                raise RuntimeError(f"warm-up never reached {missing} of the clients")
            for client in clients[:n]:
                client.on_frames = on_frames
            before = state["attempts"]
            # The event.
            if event == "redeploy":
                state["t0"] = loop.time()
                status = await loop.run_in_executor(None, self.redeploy)
                state["event_s"] = loop.time() - state["t0"]  # until the POST answered
            else:
                print("READY", flush=True)  # the runner kills the server, says KILLED
                line = await loop.run_in_executor(None, sys.stdin.readline)
                state["t0"] = loop.time()
                status = line.strip()
            state["after"] = True
            k = 0
            with self.window() as w:
                while not all_back.done() and loop.time() - state["t0"] < spec["timeout"]:
                    # the probe comes from the first client back (still open) since the event
                    prober = next((c for c in back_first if not c.closed), None)
                    if prober is not None:
                        prober.send(b"after %d" % k)
                        k += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(all_back), 0.1)
        finally:
            for task in tasks:
                task.cancel()
            for client in sessions.values():
                client.abort()
        times = sorted(state["back"].values())
        return {
            "clients": n,
            "event": event,
            "event_status": status,
            "policy": policy,
            "lost": n - len(times),
            "all_back_s": times[-1] if len(times) == n else None,
            "p50_back_s": pct(times, 50),
            "p99_back_s": pct(times, 99),
            "event_s": state.get("event_s"),
            "closed_p50_s": pct(sorted(closed), 50),
            "closed_max_s": max(closed, default=None),
            "reopened_p50_s": pct(sorted(reopened), 50),
            "reopened_max_s": max(reopened, default=None),
            "reconnect_attempts": state["attempts"] - before,
            "probes_sent": k,
            **w.cpu,
        }

    def redeploy(self) -> str:
        """POST the party's source again (a comment changed): the server reloads the party."""
        import urllib.request

        source = self.spec["party_source"] + f"\n# redeployed {time.time()}\n"
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}/party-api/parties/{self.spec['party']}",
            data=json.dumps({"source": source}).encode(),
            method="POST",
            headers={**self.headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return f"{response.status} {response.read(200).decode(errors='replace')}"

    async def bigdoc(self) -> dict[str, Any]:
        """A YServer room holding a big document: a seeder sends its updates (`updates_file`)
        while an observer, in the room from the start, counts them relayed (then the server
        has applied them all); the growth of the server's RSS is the room's memory. Then
        `joiners` clients connect at once, each asks for the document (sync step 1, empty
        state vector) and is synced when its sync step 2 arrives: seconds until all are.
        With `history_prefix` (jupyter-party), the same document is then seeded into a room
        of a party with `history` persistence, which reports the time of its compactions."""
        spec = self.spec
        frames = [b"\x00\x02" + varuint(len(u)) + u for u in read_updates(spec["updates_file"])]
        room = f"bigdoc-{os.getpid()}"
        await self.seed(self.url(room + "-warm-up"), frames[:1])  # first-room costs: not counted
        before = self.server.rss()
        seed = await self.seed(self.url(room), frames)
        await asyncio.sleep(1.0)  # let the server settle before reading its RSS
        held = self.server.rss()
        loop = asyncio.get_running_loop()
        synced: list[float] = []
        all_synced = loop.create_future()
        step1 = b"\x00\x00\x01\x00"
        n = spec["joiners"]

        def on_frames(client: Client, payloads: list[bytes]) -> None:
            if client.tag is None and any(p[:2] == b"\x00\x01" for p in payloads):
                client.tag = loop.time() - t0
                synced.append(client.tag)
                if len(synced) == n and not all_synced.done():
                    all_synced.set_result(None)

        async def join() -> Client:
            client = await self.connect(room)
            client.on_frames = on_frames
            client.send(step1, BINARY)
            return client

        with self.window() as w:
            t0 = loop.time()
            await asyncio.gather(*[join() for _ in range(n)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_synced, spec.get("timeout", 300))
        result = {
            "doc_mb": sum(map(len, frames)) / 2**20,
            "updates": len(frames),
            "seed_s": seed,
            "room_mb": (held - before) / 2**20,
            "joiners": n,
            "lost": n - len(synced),
            "all_synced_s": max(synced) if len(synced) == n else None,
            "p50_synced_s": pct(sorted(synced), 50),
            "rss_joined_mb": self.server.rss() / 2**20,
            **w.cpu,
        }
        self.close_all()
        if spec.get("history_prefix"):
            history_room = f"{spec['history_prefix']}bigdoc-{os.getpid()}{self.query}"
            result["history_seed_s"] = await self.seed(history_room, frames)
            result["compactions_ms"] = await loop.run_in_executor(
                None, self.compactions, history_room, spec.get("timeout", 300)
            )
            self.close_all()
        return result

    async def seed(self, path: str, frames: list[bytes]) -> float:
        """Send `frames` into the room at `path`; seconds until an observer got them all."""
        loop = asyncio.get_running_loop()
        got = {"n": 0}
        done = loop.create_future()

        def counted(client: Client, payloads: list[bytes]) -> None:
            got["n"] += sum(1 for p in payloads if p[:2] == b"\x00\x02")
            if got["n"] >= len(frames) and not done.done():
                done.set_result(None)

        observer = Client(self.host, self.port, path, self.headers)
        seeder = Client(self.host, self.port, path, self.headers)
        observer.on_frames = counted
        for client in (observer, seeder):
            await loop.create_connection(lambda c=client: c, self.host, self.port)
            await asyncio.wait_for(client.opened, CONNECT_TIMEOUT)
            self.clients.append(client)
        t0 = loop.time()
        for k in range(0, len(frames), 20):
            seeder.send_many(frames[k : k + 20], BINARY)
            await asyncio.sleep(0)
        await asyncio.wait_for(done, self.spec.get("timeout", 300))
        return loop.time() - t0

    def compactions(self, path: str, timeout: float) -> list[float]:
        """The compaction times the `ydochist` room reports (over HTTP), once it has one."""
        import urllib.request

        deadline = time.monotonic() + timeout
        last = None
        while True:
            request = urllib.request.Request(
                f"http://{self.host}:{self.port}{path}", headers=self.headers
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                times = json.loads(response.read())["compactions_ms"]
            if (times and times == last) or time.monotonic() > deadline:
                return times
            last = times
            time.sleep(0.5)  # compactions run after the updates are logged: poll till done

    async def churn(self) -> dict[str, Any]:
        """Sessions open and close for `seconds`: `concurrency` workers, half in plain rooms
        (connect, a message, its echo, close), half in Y rooms (connect, sync step 1, the
        server's first frame, an update, close), each worker in a room of its own, which
        therefore opens and closes with each session. The server tree's RSS is sampled every
        `sample_s`; after `warmup_s`, the least-squares slope of RSS over sessions done is the
        growth per 10,000 sessions, over the whole measured span and over each of its halves
        (flat: the halves agree)."""
        spec = self.spec
        seconds, warmup = spec["seconds"], spec["warmup_s"]
        y_prefix = spec.get("y_prefix", self.prefix)
        y_update = bytes.fromhex(spec["y_update"])
        loop = asyncio.get_running_loop()
        counts = {"plain": 0, "y": 0, "failed": 0}
        stop_at = loop.time() + seconds
        step1 = b"\x00\x00\x01\x00"  # sync step 1 with an empty state vector
        update = b"\x00\x02" + varuint(len(y_update)) + y_update

        async def session(kind: str, room: str) -> None:
            got = loop.create_future()
            client = Client(self.host, self.port, room, self.headers)
            await loop.create_connection(lambda: client, self.host, self.port)
            client.on_frames = lambda c, p: got.done() or got.set_result(None)
            try:
                await asyncio.wait_for(client.opened, CONNECT_TIMEOUT)
                if kind == "plain":
                    client.send(b"hello")
                else:
                    client.send(step1, BINARY)
                await asyncio.wait_for(got, CONNECT_TIMEOUT)
                if kind == "y":
                    client.send(update, BINARY)
                await client.close()
            finally:
                client.abort()

        async def worker(index: int) -> None:
            kind = "plain" if index % 2 == 0 else "y"
            prefix = self.prefix if kind == "plain" else y_prefix
            room = f"{prefix}churn-{os.getpid()}-{index}{self.query}"
            while loop.time() < stop_at:
                try:
                    await session(kind, room)
                    counts[kind] += 1
                except (OSError, TimeoutError):
                    counts["failed"] += 1

        samples: list[tuple[float, int, int]] = []  # (seconds since start, sessions, rss)
        children: list[tuple[int, int]] = []  # (sessions, rss of the child processes)

        async def sampler() -> None:
            start = loop.time()
            while loop.time() < stop_at:
                done = counts["plain"] + counts["y"]
                samples.append((loop.time() - start, done, self.server.rss()))
                children.append((done, self.server.rss(children_only=True)))
                await asyncio.sleep(spec["sample_s"])

        with self.window() as w:
            await asyncio.gather(sampler(), *[worker(i) for i in range(spec["concurrency"])])
        measured = [(n, rss) for t, n, rss in samples if t >= warmup]
        warm = len(samples) - len(measured)
        half = len(measured) // 2
        per_10k = lambda points: slope(points) * 10_000 / 2**20  # noqa: E731
        sessions = counts["plain"] + counts["y"]
        return {
            "sessions": sessions,
            "plain_sessions": counts["plain"],
            "y_sessions": counts["y"],
            "lost": counts["failed"],
            "sessions_per_s": sessions / w.wall,
            "measured_sessions": measured[-1][0] - measured[0][0] if measured else 0,
            "mib_per_10k_sessions": per_10k(measured),
            "mib_per_10k_first_half": per_10k(measured[: half + 1]),
            "mib_per_10k_second_half": per_10k(measured[half:]),
            # of which in the server's child processes (the party worker)
            "mib_per_10k_in_children": per_10k(children[warm:]),
            "rss_start_mb": samples[0][2] / 2**20 if samples else None,
            "rss_warm_mb": measured[0][1] / 2**20 if measured else None,
            "rss_end_mb": samples[-1][2] / 2**20 if samples else None,
            # a few points of the curve: (seconds, sessions, MiB)
            "curve": [
                (round(t), n, round(r / 2**20, 2))
                for t, n, r in samples[:: max(1, len(samples) // 20)]
            ],
            **w.cpu,
        }

    async def cpu(self) -> dict[str, Any]:
        """`clients_per_room` clients in each of the rooms `room_names` (a CPU-bound party: each
        message costs its handler ~2 ms of Python, then the room gets the reply). Closed loop:
        each client sends its next message as soon as the reply to its last one arrives, for
        `seconds`; messages/s handled, and each message's round trip."""
        spec = self.spec
        rooms, per_room, seconds = spec["room_names"], spec["clients_per_room"], spec["seconds"]
        clients = await self.connect_many([room for room in rooms for _ in range(per_room)], 50)
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {"running": True, "handled": 0, "pending": len(clients)}
        state["idle"] = loop.create_future()
        latencies: list[int] = []

        def on_frames(client: Client, payloads: list[bytes]) -> None:
            tag = client.tag
            for p in payloads:
                if not p.startswith(tag):  # a reply to another client of the room
                    continue
                now = time.perf_counter_ns()
                latencies.append(now - client.sent)
                state["handled"] += 1
                if state["running"]:
                    client.sent = now
                    client.send(tag + b"%d" % state["handled"])
                else:
                    state["pending"] -= 1
                    if not state["pending"] and not state["idle"].done():
                        state["idle"].set_result(None)

        for i, c in enumerate(clients):
            c.tag = b"c%d:" % i  # the room's reply is the message itself
            c.on_frames = on_frames
        # Warm-up: every room has started (in its worker) and every client had a reply.
        warm = [loop.create_future() for _ in clients]
        for c, got in zip(clients, warm, strict=True):
            c.on_frames = lambda c, p, got=got: (
                got.done() or not any(x.startswith(c.tag) for x in p) or got.set_result(None)
            )
            c.send(c.tag + b"warm")
        await asyncio.wait_for(asyncio.gather(*warm), 60)
        await asyncio.sleep(0.5)  # the other clients' warm-up replies are through
        for c in clients:
            c.on_frames = on_frames
        with self.window() as w:
            for c in clients:
                c.sent = time.perf_counter_ns()
                c.send(c.tag + b"0")
            await asyncio.sleep(seconds)
            handled = state["handled"]
            state["running"] = False
        await asyncio.wait_for(state["idle"], 60)  # the last replies: the server is idle again
        self.close_all()
        ms = sorted(n / 1e6 for n in latencies)
        return {
            "clients": len(clients),
            "messages": handled,
            "messages_per_s": handled / w.wall,
            "server_cpu_ms_per_msg": w.cpu_s["server"] * 1000 / max(handled, 1),
            "loadgen_cpu_ms_per_msg": w.cpu_s["loadgen"] * 1000 / max(handled, 1),
            "p50_ms": pct(ms, 50),
            "p99_ms": pct(ms, 99),
            **w.cpu,
        }

    @contextlib.contextmanager
    def window(self):
        w = Window(self.server)
        w.start()
        try:
            yield w
        finally:
            w.stop()


class ServerStats:
    """CPU time and RSS of the server processes, each with all its descendants (PartyKit's
    workerd, jupyter-party's party workers), looked up again at each reading: a worker
    started (or restarted) since is counted."""

    def __init__(self, pids: list[int]) -> None:
        self.roots = []
        if psutil is not None:
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    self.roots.append(psutil.Process(pid))
        self._known: dict[int, psutil.Process] = {}

    def procs(self, children_only: bool = False) -> list[Any]:
        out = []
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                tree = root.children(recursive=True)
                for proc in tree if children_only else [root, *tree]:
                    # Keep one Process object per pid (psutil checks it is still the same one).
                    out.append(self._known.setdefault(proc.pid, proc))
        return out

    def cpu(self) -> float:
        total = 0.0
        for proc in self.procs():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss(self, children_only: bool = False) -> int:
        total = 0
        for proc in self.procs(children_only):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total


class Window:
    """Wall time, and the CPU time of the load generator and of the server, over a window."""

    def __init__(self, server: ServerStats) -> None:
        self.server = server
        self.wall = 0.0
        self.cpu: dict[str, float] = {}

    def start(self) -> None:
        self.t0, self.c0, self.s0 = time.perf_counter(), time.process_time(), self.server.cpu()
        self.m0 = machine_busy()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu_s = {
            "loadgen": time.process_time() - self.c0,
            "server": self.server.cpu() - self.s0,
        }
        self.cpu = {
            "loadgen_cpu_pct": 100 * self.cpu_s["loadgen"] / self.wall,
            "server_cpu_pct": 100 * self.cpu_s["server"] / self.wall,
        }
        if self.m0 is not None:  # the rest of the machine: other work competing for cores
            others = machine_busy() - self.m0 - self.cpu_s["loadgen"] - self.cpu_s["server"]
            self.cpu["others_cpu_pct"] = max(0.0, 100 * others / self.wall)


def machine_busy() -> float | None:
    """CPU seconds the whole machine spent busy (every core; stolen time counts as busy)."""
    if psutil is None:
        return None
    t = psutil.cpu_times()
    return (
        sum(t)
        - t.idle
        - getattr(t, "iowait", 0.0)
        - getattr(t, "guest", 0.0)
        - getattr(t, "guest_nice", 0.0)
    )


def read_updates(path: str) -> list[bytes]:
    """Yjs updates, length-prefixed in a file (run.py's make_updates, make_bigdoc)."""
    with open(path, "rb") as f:
        blob = f.read()
    updates, i = [], 0
    while i < len(blob):
        n = int.from_bytes(blob[i : i + 4], "big")
        updates.append(blob[i + 4 : i + 4 + n])
        i += 4 + n
    return updates


def varuint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def summarize(rounds: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The median round by `key`, with every round kept."""
    ordered = sorted(rounds, key=lambda r: r[key])
    median = ordered[len(ordered) // 2]
    return {
        **median,
        "lost": sum(r["lost"] for r in rounds),
        "rounds": [round(r[key]) for r in rounds],
        "spread_pct": 100
        * (ordered[-1][key] - ordered[0][key])
        / statistics.mean(r[key] for r in rounds)
        if len(rounds) > 1
        else 0.0,
    }


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    load = Load(spec)
    try:
        result = await getattr(load, spec["scenario"])()
        if load.warm_up_rounds:
            result["warm_up_rounds"] = load.warm_up_rounds
        return result
    finally:
        load.close_all()


if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(sys.argv[1])
    try:
        import uvloop

        runner: Any = uvloop.run
        loop_name = "uvloop"
    except ImportError:
        runner, loop_name = asyncio.run, "asyncio"
    result = runner(main(spec))
    result["loadgen_loop"] = loop_name
    print(json.dumps(result), flush=True)
