"""An exec socket stays open while it is used: the SDK's wrapper, which holds the HTTP
response, is kept until the socket is released (its collection would close the socket)."""

from __future__ import annotations

import gc
import socket
import weakref
from types import SimpleNamespace
from typing import Any

from recoverctl.adapters.engine import Engine


class _Wrapper:
    """As the SDK's SocketIO: the raw socket as _sock, the response that owns it."""

    def __init__(self, raw: socket.socket):
        self._sock = raw


def test_the_wrapper_lives_until_the_socket_is_released() -> None:
    ours, theirs = socket.socketpair()
    made: list[weakref.ref[_Wrapper]] = []

    def exec_start(_id: str, socket: bool) -> _Wrapper:
        wrapper = _Wrapper(ours)
        made.append(weakref.ref(wrapper))
        return wrapper

    api = SimpleNamespace(
        exec_create=lambda *_a, **_k: {"Id": "e1"}, exec_start=exec_start
    )
    engine = Engine(SimpleNamespace(api=api))  # type: ignore[arg-type]
    container: Any = SimpleNamespace(id="c1", name="db")
    exec_id, raw = engine.exec_open(container, ("psql",), stdin=True)
    gc.collect()
    assert exec_id == "e1" and raw is ours and made[0]() is not None
    engine.exec_release(raw)
    gc.collect()
    assert made[0]() is None
    ours.close()
    theirs.close()
