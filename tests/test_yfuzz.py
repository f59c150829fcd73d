"""Fuzzing the Yjs wire protocol: hostile frames at a live YServer room, and the pure parser.

The live test sends over 10,000 malformed or mutated frames, from a pool of attacker
connections, at a room where two honest clients keep editing; then it checks that the server
survived, that every replica converged, and that the honest content is exactly what the honest
clients wrote. The unit tests drive the parser, the batch assembler and pycrdt with
hypothesis.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClosedError, websocket_connect
from ysupport import YClient

from conftest import TIMEOUT, Client
from jupyter_party.protocol.ysync import (
    AWARENESS,
    BATCH_PREFIX,
    CUSTOM_PREFIX,
    QUERY_AWARENESS,
    STEP1,
    STEP2,
    SYNC,
    UPDATE,
    AwarenessEntry,
    BatchAssembler,
    FrameError,
    SyncMessage,
    awareness_frame,
    decode_awareness,
    encode_awareness,
    parse_frame,
    read_var_uint,
    sync_frame,
    write_var_bytes,
    write_var_uint,
)

ROOM = "parties/ydoc/fuzz-live"
BYSTANDER = "parties/ydoc/fuzz-bystander"
TARGET_FRAMES = 10_000  # malformed frames the server must have handled
ATTACKERS = 12  # concurrent attacker connections
FUZZ_DEADLINE = 120.0
# Honest client ids are large: no mutation of an attacker's small ids (1..8) can reach them.
HONEST_IDS = {"a": 0x1F_2E3D_4C5B_6A79, "b": 0x1A_9B8C_7D6E_5F40, "c": 0x15_5555_AAAA_5555}
JUNK_ROOTS = ("zzjunk", "qqmap", "wwlist")  # attackers never touch "text" or "map"
TOKEN = re.compile(r"\[([a-z])(\d+)\]")


# -- frame generation -------------------------------------------------------------------------


def _attacker_material(rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    """Real updates and state vectors of documents that only edit the junk roots."""
    updates, states = [], []
    for client_id in range(1, 9):
        doc = Doc(client_id=client_id)
        junk, jmap, jlist = (
            doc.get(JUNK_ROOTS[0], type=Text),
            doc.get(JUNK_ROOTS[1], type=Map),
            doc.get(JUNK_ROOTS[2], type=Array),
        )
        for step in range(8):
            before = doc.get_state()
            with doc.transaction():
                kind = rng.randrange(4)
                if kind == 0 or len(junk) < 3:
                    junk.insert(rng.randrange(len(junk) + 1), f"junk{step}" * rng.randint(1, 5))
                elif kind == 1:
                    start = rng.randrange(len(junk) - 1)
                    del junk[start : start + 2]
                elif kind == 2:
                    jmap[f"k{rng.randrange(5)}"] = rng.choice([1, "two", [3.0], {"four": None}])
                else:
                    jlist.append(rng.randrange(1000))
            updates.append(doc.get_update(before))
        updates.append(doc.get_update())
        states.append(doc.get_state())
    return updates, states


def _awareness_update(rng: random.Random) -> bytes:
    entries = [
        AwarenessEntry(
            rng.randrange(1, 40),
            rng.randrange(10),
            json.dumps(rng.choice([None, {"user": "x" * rng.randrange(20)}, [1, 2], "s"])),
        )
        for _ in range(rng.randint(1, 3))
    ]
    return encode_awareness(entries)


class Fuzzer:
    """A seeded mutation engine: `script()` gives the frames of one attacker connection."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.updates, self.states = _attacker_material(self.rng)
        self.kinds: Counter[str] = Counter()

    def valid_binary(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            return sync_frame(STEP1, rng.choice(self.states))
        if choice in (1, 2):
            return sync_frame(rng.choice((STEP2, UPDATE)), rng.choice(self.updates))
        if choice == 3:
            return awareness_frame(_awareness_update(rng))
        if choice == 4:
            return bytes((QUERY_AWARENESS,))
        return bytes((2, 0)) + write_var_bytes(b"permission denied")  # AUTH: ignored

    def mutate(self, data: bytes) -> bytes:
        rng, out = self.rng, bytearray(data)
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(7)
            at = rng.randrange(len(out) + 1)
            if op == 0 and out:  # bit flip
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
            elif op == 1:  # truncation
                del out[at:]
            elif op == 2:  # byte insertion
                out.insert(at, rng.randrange(256))
            elif op == 3 and out:  # byte deletion
                del out[rng.randrange(len(out))]
            elif op == 4:  # a run of continuation bytes: runaway varuints
                out[at:at] = b"\xff" * rng.randint(1, 12)
            elif op == 5:  # duplicate a slice
                end = rng.randrange(at, len(out) + 1)
                out[at:at] = out[at:end]
            else:  # splice in the tail of another valid frame
                other = self.valid_binary()
                out[at:] = other[rng.randrange(len(other) + 1) :]
        return bytes(out)

    def frame(self) -> str | bytes:
        """One hostile frame (binary or text)."""
        rng = self.rng
        kind = rng.choices(
            [
                "random",
                "mutated",
                "huge-length",
                "long-varuint",
                "garbage-update",
                "bad-awareness",
                "batch-marker",
                "custom",
                "text",
                "deep-json",
            ],
            weights=[15, 35, 8, 4, 12, 10, 8, 3, 3, 2],
        )[0]
        self.kinds[kind] += 1
        if kind == "random":
            return rng.randbytes(rng.choice((rng.randrange(1, 16), rng.randrange(1, 600))))
        if kind == "mutated":
            return self.mutate(self.valid_binary())
        if kind == "huge-length":
            header = rng.choice(
                [bytes((SYNC, rng.choice((STEP1, STEP2, UPDATE)))), bytes((AWARENESS,))]
            )
            claimed = rng.choice((2**20, 2**31 - 1, 2**40, 2**55, rng.randrange(10, 10_000)))
            return header + write_var_uint(claimed) + rng.randbytes(rng.randrange(8))
        if kind == "long-varuint":
            prefix = rng.choice((b"", bytes((SYNC,)), bytes((SYNC, UPDATE)), bytes((AWARENESS,))))
            return prefix + b"\xff" * rng.randint(8, 20) + rng.randbytes(rng.randrange(4))
        if kind == "garbage-update":
            step = rng.choice((STEP1, STEP2, UPDATE))
            body = rng.choice(
                (
                    rng.randbytes(rng.randrange(1, 64)),
                    self.mutate(rng.choice(self.updates + self.states)),
                )
            )
            return sync_frame(step, body)
        if kind == "bad-awareness":
            return awareness_frame(self._bad_awareness())
        if kind == "batch-marker":
            return BATCH_PREFIX + self._bad_marker()
        if kind == "custom":
            return CUSTOM_PREFIX + "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(20))
        if kind == "text":
            return rng.choice(("", "hello", "{}", "\x00" * 5, "y-pk-batch", "__YPS"))
        depth = rng.randint(5_000, 100_000)  # "deep-json": the json module recurses
        if rng.random() < 0.5:
            return BATCH_PREFIX + "[" * depth
        return awareness_frame(encode_awareness([AwarenessEntry(3, 1, "[" * depth)]))

    def _bad_awareness(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(6)
        client, clock = write_var_uint(rng.randrange(1, 50)), write_var_uint(rng.randrange(9))
        if choice == 0:  # a state that is not JSON
            state = rng.choice((b"{", b"nul", b"\xff\xfe", b"[1,", b"'x'", rng.randbytes(5)))
            return b"\x01" + client + clock + write_var_bytes(state)
        if choice == 1:  # an entry count far above what follows
            return write_var_uint(rng.choice((2, 1000, 2**40))) + client + clock + b"\x02{}"
        if choice == 2:  # trailing bytes
            return _awareness_update(rng) + rng.randbytes(rng.randint(1, 4))
        if choice == 3:  # a state over max_awareness_state (16 KiB)
            state = json.dumps({"blob": "x" * (17 << 10)}).encode()
            return b"\x01" + client + clock + write_var_bytes(state)
        if choice == 4:  # a state length that runs past the end
            return b"\x01" + client + clock + write_var_uint(rng.randrange(3, 2**30)) + b"{}"
        return self.mutate(_awareness_update(rng))

    def _bad_marker(self) -> str:
        rng = self.rng
        fields = {
            "id": rng.choice(("b1", "b2", 7, None, "")),
            "type": rng.choice(("start", "end", "middle", None)),
            "size": rng.choice((0, 1, 10, 1 << 30, -1, 2.5, "10", None)),
            "count": rng.choice((0, 1, 2, 3, 11, -4, True, None)),
        }
        for key in list(fields):
            if rng.random() < 0.2:
                del fields[key]
        if rng.random() < 0.1:
            return rng.choice(("", "{", "[]", "null", '"start"', "{}x"))
        return json.dumps(fields)

    def batch_script(self) -> list[str | bytes]:
        """A whole y-pk-batch exchange with one lie in it (count, size, id or chunk)."""
        rng = self.rng
        payload = sync_frame(UPDATE, rng.choice(self.updates))
        chunks = [payload[i : i + 8] for i in range(0, len(payload), 8)]
        start = {"id": "b", "type": "start", "size": len(payload), "count": len(chunks)}
        end = {**start, "type": "end"}
        lie = rng.randrange(6)
        if lie == 0:
            end["count"] += rng.choice((-1, 1))
        elif lie == 1:
            end["size"] += rng.choice((-1, 1))
        elif lie == 2:
            end["id"] = "other"
        elif lie == 3:
            chunks.append(b"extra")
        elif lie == 4:
            chunks.pop(rng.randrange(len(chunks)))
        else:  # a batch inside a batch
            chunks.insert(1, BATCH_PREFIX + json.dumps(start))
        self.kinds["batch-script"] += 1
        return [BATCH_PREFIX + json.dumps(start), *chunks, BATCH_PREFIX + json.dumps(end)]

    def script(self) -> list[str | bytes]:
        if self.rng.random() < 0.05:
            return self.batch_script()
        return [self.frame() for _ in range(self.rng.randint(1, 4))]


# -- the live room ----------------------------------------------------------------------------


def _yclient(client: Client, client_id: int) -> YClient:
    """A YClient whose document has a fixed client id."""
    return YClient(client, Doc(client_id=client_id))


def _append(token: str):
    return lambda doc: doc.get("text", type=Text).__iadd__(token)


def _set(key: str, value: int):
    return lambda doc: doc.get("map", type=Map).__setitem__(key, value)


def _check_exact(text: str, written: dict[str, int]) -> None:
    """`text` is exactly the honest tokens, each once, each writer's in its own order."""
    assert TOKEN.sub("", text) == "", f"foreign content in the honest text: {text!r}"
    tokens = [(who, int(n)) for who, n in TOKEN.findall(text)]
    assert Counter(tokens) == Counter((w, n) for w, count in written.items() for n in range(count))
    for who in written:
        mine = [n for w, n in tokens if w == who]
        assert mine == sorted(mine), f"{who}'s edits out of order"


class Stats:
    def __init__(self) -> None:
        self.handled = 0  # fuzz frames the server processed (echo seen, or it closed on them)
        self.refused = 0  # connections closed with 1007
        self.connections = 0
        self.close_codes: Counter[int | None] = Counter()
        self.stop = False


async def _attacker(open_ws, fuzzer: Fuzzer, stats: Stats, number: int) -> None:
    """Open connection after connection; each sends one script, every frame followed by a
    probe (a custom message the `ydoc` party echoes) so we know which frames it handled."""
    deadline = time.monotonic() + FUZZ_DEADLINE
    while not stats.stop:
        assert time.monotonic() < deadline, "the fuzzer ran out of time"
        script = fuzzer.script()
        client = await open_ws(ROOM)
        stats.connections += 1
        tag = f"probe-{number}-{stats.connections}-"
        try:
            for i, frame in enumerate(script):
                await client.send(frame)
                await client.send(f"{CUSTOM_PREFIX}{tag}{i}")
        except WebSocketClosedError:
            pass  # closed on an earlier frame: the rest is not counted
        echoed = 0
        while echoed < len(script):
            message = await client.recv()
            if message is None:
                break
            if message == f"{CUSTOM_PREFIX}echo:{tag}{echoed}":
                echoed += 1
        closed = echoed < len(script)
        stats.handled += echoed + closed
        if closed:
            code = client.ws.close_code
            stats.close_codes[code] += 1
            stats.refused += code == 1007
        else:
            client.close()
        if stats.handled >= TARGET_FRAMES:
            stats.stop = True


async def _honest(client: YClient, who: str, written: dict[str, int], stats: Stats) -> None:
    """Append tokens (and set map keys) until the attack is over, each edit settled."""
    while not stats.stop:
        n = written[who]
        await client.edit(_append(f"[{who}{n}]"))
        if n % 5 == 0:
            await client.edit(_set(f"{who}{n}", n))
        written[who] = n + 1
        await client.settled()


# The honest clients edit as fast as the loop lets them (~80 messages/s each): the inbound
# rate limit, which drops messages silently before it closes, is not what is tested here.
@pytest.mark.party_config(rate_limit_messages=0)
async def test_live_room_survives_10000_hostile_frames(url, jp_auth_header, http):
    async def open_ws(path: str) -> Client:
        request = HTTPRequest(url(path, "ws"), headers=jp_auth_header, connect_timeout=TIMEOUT)
        return Client(await websocket_connect(request))

    a = await _yclient(await open_ws(ROOM), HONEST_IDS["a"]).sync()
    b = await _yclient(await open_ws(ROOM), HONEST_IDS["b"]).sync()
    by = await _yclient(await open_ws(BYSTANDER), HONEST_IDS["c"]).sync()
    written = {"a": 0, "b": 0}
    bystander_written = {"c": 0}
    stats = Stats()
    started = time.monotonic()
    fuzzers = [Fuzzer(seed) for seed in range(ATTACKERS)]
    await asyncio.gather(
        *(_attacker(open_ws, f, stats, n) for n, f in enumerate(fuzzers)),
        _honest(a, "a", written, stats),
        _honest(b, "b", written, stats),
        _honest(by, "c", bystander_written, stats),
    )
    elapsed = time.monotonic() - started
    kinds = sum((f.kinds for f in fuzzers), Counter())
    print(
        f"\n{stats.handled} hostile frames handled in {elapsed:.1f}s over {stats.connections} "
        f"connections; closes {dict(stats.close_codes)}; kinds {dict(kinds)}; "
        f"honest edits {written} {bystander_written}"
    )
    assert stats.handled >= TARGET_FRAMES
    assert stats.refused >= 2_000, "too few frames were actually malformed"
    # Every attacker the server closed, it closed for malformed data (1009: a frame too big).
    assert set(stats.close_codes) <= {1007, 1009}, stats.close_codes
    assert min(written.values()) >= 5, "the honest clients were starved"

    # The honest clients converge, with each other and with the server, on exactly their edits.
    expected_map = {f"{w}{n}": n for w, count in written.items() for n in range(0, count, 5)}
    for client in (a, b):
        await client.settled()
        await client.until(lambda c=client: Counter(TOKEN.findall(c.text)) == _all(written))
    assert a.text == b.text
    _check_exact(a.text, written)
    assert a.map == b.map == expected_map
    state = json.loads((await http(ROOM)).body)
    assert state == {"text": a.text, "map": expected_map}

    # The room still works: a new client gets the same document, and its edits go through.
    late = await _yclient(await open_ws(ROOM), HONEST_IDS["c"] + 1).sync()
    assert (late.text, late.map) == (a.text, a.map)
    # (The junk roots are not compared: see test_gapped_update_is_not_broadcast.)
    await late.edit(_append("[z0]"))
    await a.until(lambda: a.text.endswith("[z0]"))
    # So do other rooms: the bystander's, and a brand new one.
    by_late = await _yclient(await open_ws(BYSTANDER), HONEST_IDS["c"] + 2).sync()
    _check_exact(by_late.text, bystander_written)
    fresh = await _yclient(await open_ws("parties/ydoc/fuzz-fresh"), HONEST_IDS["c"] + 3).sync()
    await fresh.edit(_append("[f0]"))
    await fresh.settled()
    assert json.loads((await http("parties/ydoc/fuzz-fresh")).body)["text"] == "[f0]"

    # Nothing of the attackers is left in the room's bookkeeping (sync sessions, with the batches
    # they reassemble, awareness states): the test party lists what is kept for closed connections.
    kept = json.loads((await http(f"{ROOM}/bookkeeping")).body)
    assert len(kept["connections"]) == 3
    assert kept["sessions"] == []
    assert kept["awareness"] == []
    # (The owners map itself leaks: see test_oversized_awareness_state_does_not_lock_the_id.)


def _all(written: dict[str, int]) -> Counter:
    return Counter((w, str(n)) for w, count in written.items() for n in range(count))


def _junk(doc: Doc) -> tuple:
    return (
        str(doc.get(JUNK_ROOTS[0], type=Text)),
        doc.get(JUNK_ROOTS[1], type=Map).to_py(),
        doc.get(JUNK_ROOTS[2], type=Array).to_py(),
    )


async def _room_with_honest_text(url, jp_auth_header, room: str):
    async def open_ws() -> Client:
        request = HTTPRequest(url(room, "ws"), headers=jp_auth_header, connect_timeout=TIMEOUT)
        return Client(await websocket_connect(request))

    honest = await _yclient(await open_ws(), HONEST_IDS["a"]).sync()
    await honest.edit(lambda doc: doc.get("text", type=Text).__iadd__("[a0][a1]"))
    await honest.edit(_set("a0", 0))
    await honest.settled()
    return honest, open_ws


def _panicking_update(doc: Doc, client_id: int) -> bytes:
    """`doc`'s update with its first clock replaced by a huge one: yrs 0.28 panics on it
    (block_store.rs:317, `Option::unwrap()` on None) when the client id is already known."""
    update = doc.get_update()
    head = b"\x01" + write_var_uint(2) + write_var_uint(client_id) + write_var_uint(0)
    assert update.startswith(head)
    return head[:-1] + b"\xff" * 5 + b"\x00" + update[len(head) :]


async def test_panicking_update_leaves_the_server_and_document_intact(tmp_path):
    # In a child server: in this process the segfault would take pytest down with it.
    from test_process import TOKEN, party_serve

    server = party_serve(tmp_path, tmp_path / "panic.db")
    try:
        await asyncio.to_thread(server.start)
        url = f"ws://127.0.0.1:{server.port}/parties/ydoc/panic"
        header = {"Authorization": f"token {TOKEN}"}

        async def open_ws() -> Client:
            return Client(await websocket_connect(HTTPRequest(url, headers=header)))

        honest = await _yclient(await open_ws(), HONEST_IDS["a"]).sync()
        await honest.edit(lambda doc: doc.get("text", type=Text).__iadd__("[a0][a1]"))
        await honest.edit(_set("a0", 0))
        await honest.settled()
        # Client ids are public: every connection gets the room's state vector in step 1.
        attacker = await open_ws()
        await attacker.send(sync_frame(UPDATE, _panicking_update(honest.doc, HONEST_IDS["a"])))
        assert (await attacker.closed())[0] == 1007
        late = await _yclient(await open_ws(), HONEST_IDS["b"]).sync()
        assert late.text == "[a0][a1]"
        for _ in range(3):
            status, body = await asyncio.to_thread(
                _request, server.port, "GET", "/parties/ydoc/panic"
            )
            assert status == 200, server.log()[-3000:]
            assert json.loads(body)["text"] == "[a0][a1]"
    finally:
        server.kill()


def _request(port: int, method: str, path: str):
    from test_process import request

    try:
        return request(port, method, path)
    except OSError as error:  # the server died
        return None, repr(error)


async def test_oversized_awareness_state_does_not_lock_the_id(url, jp_auth_header, http):
    honest, open_ws = await _room_with_honest_text(url, jp_auth_header, "parties/ydoc/awlock")
    attacker = await open_ws()
    big = AwarenessEntry(77, 1, json.dumps({"blob": "x" * (17 << 10)}))
    await attacker.send(awareness_frame(encode_awareness([big])))
    assert (await attacker.closed())[0] == 1007
    owner = await YClient(await open_ws()).sync()
    await owner.set_awareness(77, 2, {"user": "rightful"})
    await owner.settled()
    await honest.settled()
    assert honest.states.get(77) == {"user": "rightful"}  # (awareness echoes precede the marks)
    kept = json.loads((await http("parties/ydoc/awlock/bookkeeping")).body)
    assert kept["owners"] == [], "owner map holds a closed one"


@pytest.mark.xfail(
    strict=True,
    reason="pycrdt/yrs: an update with a clock gap is kept pending, but its map entry is "
    "visible in the server document and in get_update(); the observer broadcasts b'\\x00\\x00', "
    "so connected clients never see what late joiners see",
)
async def test_gapped_update_is_not_broadcast(url, jp_auth_header):
    honest, open_ws = await _room_with_honest_text(url, jp_auth_header, "parties/ydoc/gap")
    source = Doc(client_id=5)
    source.get("qqmap", type=Map)["x"] = 1
    after_x = source.get_state()
    source.get("qqmap", type=Map)["y"] = 2
    attacker = await _yclient(await open_ws(), 6).sync()
    await attacker.ws.send(sync_frame(UPDATE, source.get_update(after_x)))  # y without x
    await attacker.settled()
    await honest.settled()
    late = await _yclient(await open_ws(), HONEST_IDS["b"]).sync()
    assert late.doc.get("qqmap", type=Map).to_py() == honest.doc.get("qqmap", type=Map).to_py()


# -- the pure parser, under hypothesis --------------------------------------------------------

FUZZ = settings(
    max_examples=5000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_MATERIAL = _attacker_material(random.Random(99))
_VALID = [
    *(sync_frame(UPDATE, u) for u in _MATERIAL[0][:10]),
    *(sync_frame(STEP1, s) for s in _MATERIAL[1][:3]),
    awareness_frame(_awareness_update(random.Random(1))),
    bytes((QUERY_AWARENESS,)),
]


@st.composite
def mutated(draw, sources: list[bytes]) -> bytes:
    """A valid input with a few bit flips, truncations, insertions and deletions."""
    out = bytearray(draw(st.sampled_from(sources)))
    for op, where, value in draw(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255)), max_size=4
        )
    ):
        at = where % (len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << (value % 8)
        elif op == 1:
            del out[at:]
        elif op == 2:
            out.insert(at, value)
        elif out:
            del out[at % len(out)]
    return bytes(out)


varuint_headers = st.builds(
    lambda parts, tail: b"".join(map(write_var_uint, parts)) + tail,
    st.lists(st.integers(0, 2**63), min_size=1, max_size=4),
    st.binary(max_size=16),
)
hostile_frames = st.one_of(st.binary(max_size=300), mutated(_VALID), varuint_headers)


def test_varuint_round_trip():
    for n in (0, 1, 127, 128, 2**14, 2**53 - 1, 2**56 - 1):
        assert read_var_uint(write_var_uint(n) + b"tail", 0) == (n, len(write_var_uint(n)))


@FUZZ
@given(hostile_frames)
@example(b"\x00\x02" + b"\xff" * 9)
@example(b"\x00\x02\x80\x80\x80\x80\x01abc")
@example(b"")
def test_parse_frame_raises_only_frame_error(frame):
    try:
        message = parse_frame(frame)
    except FrameError:
        return
    if isinstance(message, SyncMessage):
        assert message.step in (STEP1, STEP2, UPDATE)
        assert len(message.payload) < len(frame)
        assert message.payload in frame  # (bytes after the payload are ignored)


awareness_entries = st.lists(
    st.builds(
        AwarenessEntry,
        st.integers(0, 2**53),
        st.integers(0, 2**53),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=10),
            st.lists(st.text(max_size=3), max_size=3),
        ).map(json.dumps),
    ),
    max_size=4,
)
hostile_awareness = st.one_of(
    st.binary(max_size=200),
    awareness_entries.map(encode_awareness),
    mutated([encode_awareness(e) for e in [[AwarenessEntry(1, 2, '{"a":[1]}')], []]]),
)


@FUZZ
@given(hostile_awareness)
def test_decode_awareness_raises_only_frame_error(update):
    try:
        entries = decode_awareness(update)
    except FrameError:
        return
    for entry in entries:
        json.loads(entry.state)
    assert decode_awareness(encode_awareness(entries)) == entries


@settings(FUZZ, max_examples=500)
@given(awareness_entries)
def test_awareness_round_trip(entries):
    assert decode_awareness(encode_awareness(entries)) == entries


markers = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["a", "b", "", 1, None]),
        "type": st.sampled_from(["start", "end", "other", None]),
        "size": st.one_of(
            st.integers(-2, 40), st.just(1 << 40), st.floats(0, 5), st.text(max_size=2)
        ),
        "count": st.one_of(st.integers(-2, 6), st.booleans(), st.none()),
    },
).map(json.dumps)
batch_ops = st.lists(
    st.one_of(
        markers.map(lambda m: ("text", BATCH_PREFIX + m)),
        st.text(max_size=20).map(lambda t: ("text", BATCH_PREFIX + t)),
        st.binary(max_size=12).map(lambda b: ("binary", b)),
    ),
    max_size=12,
)


@settings(FUZZ, max_examples=2000)
@given(batch_ops)
def test_batch_assembler_raises_only_frame_error(ops):
    """Fed like YServer feeds it (binary only while active), until the first FrameError; a
    message comes out only when it is exactly the chunks announced by its start marker."""
    assembler = BatchAssembler(max_size=32)
    chunks: list[bytes] = []
    announced = None
    for kind, data in ops:
        try:
            if kind == "binary":
                if assembler.active:
                    assembler.feed_binary(data)
                    chunks.append(data)
                continue
            whole = assembler.feed_text(data)
        except FrameError:
            return
        marker = json.loads(data[len(BATCH_PREFIX) :])
        if marker["type"] == "start":
            chunks, announced = [], marker
        else:
            assert whole == b"".join(chunks)
            assert (len(whole), len(chunks)) == (announced["size"], announced["count"])
            assert announced["size"] <= 32


# Counts stay below 2**20: yrs preallocates whatever a state vector claims (2**28 entries: half
# a gigabyte and 0.3 s for a 12-byte STEP1 frame), which is reported, not tested here.
update_garbage = st.one_of(
    st.binary(max_size=200),
    mutated(_MATERIAL[0] + _MATERIAL[1]),
    st.builds(
        lambda parts, tail: b"".join(map(write_var_uint, parts)) + tail,
        st.lists(st.integers(0, 2**20), min_size=1, max_size=4),
        st.binary(max_size=16),
    ),
)


@settings(FUZZ, max_examples=1000)
@given(update_garbage)
def test_pycrdt_rejects_garbage_with_value_error_only(data):
    """What YServer passes to pycrdt: a failed apply raises ValueError and changes nothing."""
    doc = Doc(client_id=HONEST_IDS["a"])
    doc.get("text", type=Text).__iadd__("[a0]")
    for call in (doc.get_update, doc.apply_update):
        before, state = doc.get_update(), doc.get_state()
        try:
            call(data)
        except ValueError:
            pass
        except BaseException as error:
            pytest.fail(f"{call.__name__} raised {type(error).__name__}: {error}")
        else:
            continue
        assert (doc.get_update(), doc.get_state()) == (before, state), "a failed apply changed it"
