"""The pytest plugin (entry point `pytest11`): fixtures of the party test kit.

`party_room` and `party_host` are jupyter_party.testing's factories; a project overrides them
in its conftest.py to give every test the same options (storage, env, limits):

    @pytest.fixture
    def party_room():
        return functools.partial(testing.party_room, env={"API_KEY": "test"})
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def party_room() -> Any:
    """`async with party_room(PartyClass, room_id, **options) as room:` (see the kit)."""
    from .testing import party_room

    return party_room


@pytest.fixture
def party_host() -> Any:
    """`async with party_host({"name": PartyClass, ...}, **options) as host:`."""
    from .testing import party_host

    return party_host
