"""jupyter-party's Prometheus series at `{base}metrics`, moving with real traffic."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from conftest import eventually


async def scrape(http) -> dict[tuple[str, tuple], float]:
    response = await http("metrics")
    assert response.code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
        if sample.name.startswith("jupyter_party_")
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_the_series_move_with_traffic(http, connect, share):
    before = await scrape(http)
    counter = await connect("parties/counter/metrics")
    assert await counter.recv() == "0"
    for _ in range(5):
        await counter.send("increment")  # each one a durable storage write, then a broadcast
        await counter.recv()
    faulty = await connect("parties/faulty/metrics")
    await faulty.recv()
    await faulty.send("boom")  # the party raises
    await faulty.send("after")
    assert await faulty.recv() == "ok:after"
    await share("counter", "metrics")
    state = {}

    async def moved() -> bool:
        state.update(await scrape(http))
        return (
            value(state, "jupyter_party_storage_commit_seconds_count")
            > value(before, "jupyter_party_storage_commit_seconds_count")
            and value(state, "jupyter_party_rooms", worker="0") >= 2
        )

    await eventually(moved, message="the worker's report")  # sent about once a second
    assert (
        value(state, "jupyter_party_connections", access="write")
        - value(before, "jupyter_party_connections", access="write")
        == 2
    )

    def grew(name: str, **labels: str) -> float:
        return value(state, name, **labels) - value(before, name, **labels)

    assert grew("jupyter_party_messages_total", direction="in") == 7
    assert grew("jupyter_party_messages_total", direction="out") == 1 + 5 + 1 + 1
    assert grew("jupyter_party_message_bytes_total", direction="in") >= 5 * len("increment")
    assert grew("jupyter_party_handler_errors_total", party="faulty") == 1
    assert grew("jupyter_party_share_links_total", event="issued") == 1

    counter.close(4000)
    await counter.closed()

    async def closed() -> bool:
        state.update(await scrape(http))
        return grew("jupyter_party_closes_total", code="4000") == 1

    await eventually(closed, message="the close to be counted")
    assert (
        value(state, "jupyter_party_connections", access="write")
        - value(before, "jupyter_party_connections", access="write")
        == 1
    )
    assert json.loads((await http("parties/counter/metrics")).body) == {"count": 5}
