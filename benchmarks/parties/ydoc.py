"""Party "ydoc": a CRDT room held only in memory, compared with pycrdt-websocket."""

from jupyter_party import YServer


class Ydoc(YServer):
    persistence = None
