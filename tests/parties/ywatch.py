"""Test CRDT party whose own document observer raises on the word "explode"."""

from pycrdt import Text

from jupyter_party import YServer


class Watched(YServer):
    def on_start(self):
        self.errors = []
        self.text = self.document.get("text", type=Text)  # pycrdt: keep the observed type
        self.text.observe(self._watch)

    def _watch(self, event):
        if "explode" in str(event.target):
            raise RuntimeError("the party's observer failed")

    def on_error(self, connection, error):
        self.errors.append(str(error))

    def on_request(self, request):
        return {"text": str(self.document.get("text", type=Text)), "errors": self.errors}

    def on_custom_message(self, connection, message):
        self.send_custom_message(connection, f"echo:{message}")
