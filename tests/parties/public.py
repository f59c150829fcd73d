"""Test party that opens its `open-*` rooms to anyone (read-only), and keeps the rest closed."""

from jupyter_party import Server


def _gate(request, lobby):
    if lobby.id.startswith("open-") and request.user is None:
        return request.copy(access="read")  # returning a request admits the stranger
    return None  # closed to strangers; Jupyter users and share links get in as usual


class Public(Server):
    on_before_connect = staticmethod(_gate)
    on_before_request = staticmethod(_gate)

    def on_connect(self, connection, ctx):
        connection.send({"user": ctx.user.username if ctx.user else None, "access": ctx.access})

    def on_request(self, request):
        return {"user": request.user.username if request.user else None, "access": request.access}
