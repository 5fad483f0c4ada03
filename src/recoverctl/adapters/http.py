"""GETs to the stack's own published port on loopback: nothing else is ever contacted."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    status: int
    body: str


def get(port: int, path: str, timeout: float = 10) -> Reply:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return Reply(resp.status, resp.read(65536).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(65536).decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as exc:
        return Reply(0, str(getattr(exc, "reason", exc)))


def published_port(ports: tuple[str, ...], inner: int = 8000) -> int | None:
    """From the engine's '127.0.0.1:49153->8000/tcp' rows, the host port for inner."""
    for row in ports:
        host, _, rest = row.rpartition("->")
        if rest.split("/")[0] == str(inner) and host.startswith("127.0.0.1:"):
            return int(host.rsplit(":", 1)[1])
    return None
