"""Test CRDT party: snapshot persistence, read-only by query, custom message echo."""

from pycrdt import Map, Text

from jupyter_party import YServer


class Notes(YServer):
    persistence = "snapshot"

    def is_read_only(self, connection):
        return "readonly=1" in connection.uri

    def on_custom_message(self, connection, message):
        self.send_custom_message(connection, f"echo:{message}")

    def on_request(self, request):
        """GET: the document's `text` and `map` roots; POST: append the body to `text`."""
        text = self.document.get("text", type=Text)
        if request.method == "POST":
            text += request.text()
        return {"text": str(text), "map": self.document.get("map", type=Map).to_py()}
