"""`jupyter party ...`: command-line entry points.

`jupyter party serve` runs the same extension and route table as inside Jupyter, on a Jupyter
server with no other extension and no notebook UI, so authentication, logging and the printed
token URL behave exactly as in `jupyter server`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `jupyter-party` script (run as `jupyter party`)."""
    parser = argparse.ArgumentParser(prog="jupyter party", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run a standalone party server",
        description="Run a standalone party server (other options go to Jupyter's ServerApp, "
        "e.g. --ServerApp.base_url=/x/).",
    )
    serve.add_argument("--parties", metavar="DIR", help="directory of party modules")
    serve.add_argument("--port", type=int, help="port to listen on (default 8888)")
    serve.add_argument("--ip", help="address to listen on (default localhost)")
    serve.add_argument(
        "--storage",
        metavar="URL",
        help="sqlite:///path/file.db, redis://host:port/db or memory:// (default: the --redis "
        "URL if given, else a SQLite file)",
    )
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="redis://host:port/db: join the party cluster of the servers sharing this Redis",
    )
    serve.add_argument(
        "--workers", type=int, help="worker processes for party code (default 1; 0: in process)"
    )
    serve.add_argument(
        "--handler-timeout", type=float, metavar="SECONDS", help="kill a stuck handler (default 30)"
    )
    serve.add_argument(
        "--worker-memory-limit", type=int, metavar="BYTES", help="restart a worker over it"
    )
    share = commands.add_parser(
        "share",
        help="print a share link for one room",
        description="Print a URL that opens one room (and nothing else of the server).",
    )
    share.add_argument("party")
    share.add_argument("room")
    share.add_argument("--access", choices=("write", "read"), default="write")
    share.add_argument("--expires-in", type=float, default=24 * 3600, metavar="SECONDS")
    share.add_argument("--server", help="server URL (default: the running Jupyter server)")
    share.add_argument("--token", help="Jupyter token of that server")
    deploy = commands.add_parser(
        "deploy",
        help="deploy (or hot-reload) a party module on a running server",
        description="Send a party module to the Jupyter server, which stores it and reloads it "
        "(live connections of the party reconnect to the new code).",
    )
    deploy.add_argument("file", help="the party's module, e.g. chat.py")
    deploy.add_argument("--name", help="party name (default: the file's stem)")
    deploy.add_argument("--server", help="server URL (default: the running Jupyter server)")
    deploy.add_argument("--token", help="Jupyter token of that server")
    listing = commands.add_parser("list", help="list the parties of the running server")
    rooms = commands.add_parser("rooms", help="list the live rooms (of one party, or all)")
    rooms.add_argument("party", nargs="?")
    logs = commands.add_parser("logs", help="print a party's output (prints, logs, errors)")
    logs.add_argument("party")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    undeploy = commands.add_parser(
        "undeploy",
        help="remove a deployed party",
        description="Remove a party's file from the server's parties_dir and unload it (its "
        "clients are closed with 1012); its rooms' storage is kept.",
    )
    undeploy.add_argument("party")
    for command in (listing, rooms, logs, undeploy):
        command.add_argument("--server", help="server URL (default: the running Jupyter server)")
        command.add_argument("--token", help="Jupyter token of that server")
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        _serve(args, rest)
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "share":
        _share(args)
    elif args.command == "deploy":
        _deploy(args)
    else:
        _admin(args)


def _serve(args: argparse.Namespace, rest: list[str]) -> None:
    # jsonschema (through jupyter_events) imports rfc3987_syntax when installed, which compiles
    # some 35 Earley grammars on import: over a second of every start, a long pause for
    # clients reconnecting after a restart. It only checks the "iri" formats, which no schema
    # of Jupyter's uses; without it jsonschema leaves those formats unchecked.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    from .extension import PartyApp
    from .runtime import tuning

    options = {
        "PartyApp.parties_dir": args.parties,
        "PartyApp.storage_url": args.storage,
        "PartyApp.redis_url": args.redis,
        "PartyApp.workers": args.workers,
        "PartyApp.handler_timeout": args.handler_timeout,
        "PartyApp.worker_memory_limit": args.worker_memory_limit,
        "ServerApp.port": args.port,
        "ServerApp.ip": args.ip,
    }
    argv = [f"--{name}={value}" for name, value in options.items() if value is not None]
    tuning.fast_event_loop()
    PartyApp.load_other_extensions = False
    PartyApp.own_process = True
    PartyApp.launch_instance(argv=argv + rest)


def _share(args: argparse.Namespace) -> None:
    from .client import ServerNotFound, ShareLinkError, share_link

    try:
        url = share_link(
            args.party,
            args.room,
            args.access,
            args.expires_in,
            server=args.server,
            token=args.token,
        )
    except (ServerNotFound, ShareLinkError) as error:
        sys.exit(f"jupyter party share: {error}")
    print(url)


def _deploy(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .client import DeployError, ServerNotFound, deploy

    path = Path(args.file)
    if not path.is_file():
        sys.exit(f"jupyter party deploy: no such file: {path}")
    try:
        result = deploy(path, args.name, server=args.server, token=args.token)
    except (ServerNotFound, DeployError, ConnectionError, ValueError) as error:
        sys.exit(f"jupyter party deploy: {error}")
    print(result)


def _admin(args: argparse.Namespace) -> None:
    """`list`, `rooms`, `logs` and `undeploy`: the admin API of the running server."""
    from .client import ServerNotFound, find_server
    from .client.admin import AdminError, parties, rooms, undeploy

    where = {"server": args.server, "token": args.token}
    try:
        if args.command == "list":
            for party in parties(**where):
                print(f"{party['name']:<20} {party.get('kind') or '':<8} {party['source'] or ''}")
                if party["error"]:
                    print(f"{'':<20} failed to load: {party['error'].strip().splitlines()[-1]}")
        elif args.command == "rooms":
            for room in rooms(args.party, **where):
                node = f" on node {room['node']}" if room.get("node") else ""
                print(
                    f"{room['party']:<20} {room['room']:<30} {room['connections']} "
                    f"connection(s){node}"
                )
        elif args.command == "undeploy":
            closed = undeploy(args.party, **where)
            print(f"party {args.party!r} undeployed ({closed} client(s) closed)")
        else:
            if args.party not in {party["name"] for party in parties(**where)}:
                print(f"(no party {args.party!r} is loaded now)", file=sys.stderr)
            asyncio.run(_print_logs(find_server(**where), args.party, args.follow))
    except AdminError as error:
        sys.exit(f"jupyter party {args.command}: the server answered {error.status}: {error}")
    except (ServerNotFound, ConnectionError) as error:
        sys.exit(f"jupyter party {args.command}: {error}")
    except KeyboardInterrupt:
        pass


async def _print_logs(info, party: str, follow: bool) -> None:
    import time

    from .client.logs import fetch_logs

    after = 0
    while True:
        status, records, after = await fetch_logs(info, party, after, wait=30 if follow else 0)
        if status != 200:
            raise ConnectionError(f"{info.url} answered {status} for the logs of party {party!r}")
        for record in records:
            when = time.strftime("%H:%M:%S", time.localtime(record["time"]))
            room = record["room"] or "-"
            node = f"[{record['node']}] " if record.get("node") else ""  # in a party cluster
            print(f"{when} {node}{room} {record['kind']}: {record['text']}", flush=True)
        if not follow:
            return


if __name__ == "__main__":
    main(sys.argv[1:])
