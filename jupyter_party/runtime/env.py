"""A party's environment, `room.env` and `lobby.env`: its settings and secrets.

Two sources, merged per party: `PartyApp.party_env` (every party), then the `.env` file in the
directory of the party's module, which wins key by key. The file is read when the party is
loaded (start, deploy, reload). Values travel to the workers in their start-up configuration,
never through `os.environ`, and are never logged or shown by any API.
"""

from __future__ import annotations

from pathlib import Path

FILE_NAME = ".env"


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines of a `.env` file: blank lines and `#` comments are skipped, an
    `export ` prefix is allowed, and a value in matching quotes loses them. No expansion."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            # Say where, never what: the line may hold a secret.
            raise ValueError(f"{path}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env
