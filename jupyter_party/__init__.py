"""jupyter-party: PartyKit's programming model, hosted by your Jupyter server."""

from .client import (
    DeployError,
    DeployResult,
    connect,
    connect_blocking,
    deploy,
    doc,
    host,
    logs,
    share_link,
    undeploy,
)
from .runtime.connection import Connection
from .runtime.http import Request, Response
from .runtime.room import Lobby, Room
from .runtime.server import ConnectionContext, Server
from .runtime.yserver import YServer
from .widgets import show

__version__ = "0.1.0"

__all__ = [
    "Connection",
    "ConnectionContext",
    "DeployError",
    "DeployResult",
    "Lobby",
    "Request",
    "Response",
    "Room",
    "Server",
    "YServer",
    "connect",
    "connect_blocking",
    "deploy",
    "doc",
    "host",
    "logs",
    "share_link",
    "show",
    "undeploy",
]


def _jupyter_server_extension_points() -> list[dict]:
    from .extension import PartyApp

    return [{"module": "jupyter_party", "app": PartyApp}]


def load_ipython_extension(ipython) -> None:
    """`%load_ext jupyter_party`: registers the `%%party` cell magic."""
    from .client.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .client.magic import unload_ipython_extension as unload

    unload(ipython)


def _register_in_ipython() -> None:
    """Importing the package inside IPython registers `%%party` too (IPython is not imported
    by processes that do not run it, such as the Jupyter server)."""
    import sys

    ipython_module = sys.modules.get("IPython")
    shell = ipython_module.get_ipython() if ipython_module is not None else None
    if shell is not None:
        load_ipython_extension(shell)


_register_in_ipython()
