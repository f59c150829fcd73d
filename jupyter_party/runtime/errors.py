"""Why an event could not reach a room; the web layer maps each to a close code and status."""

from __future__ import annotations


class UnknownParty(KeyError):
    """No party of that name (close 4404 / HTTP 404); str() is a message for humans."""

    def __str__(self) -> str:
        return str(self.args[0])


class Overloaded(Exception):
    """A server-wide limit was reached (close 1013 / HTTP 503)."""


class RoomError(Exception):
    """The room failed to start or `on_connect` raised (close 1011)."""


class Elsewhere(Overloaded):
    """Another node of the party cluster owns the room (close 1013 / HTTP 503: try again)."""
