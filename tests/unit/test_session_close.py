"""A psql session closed by two threads at once: the command leaving its snapshot session
after pg_dump failed, while the facts thread closes it after its own query failed (the db
killed mid-backup). Each close takes the socket alone; neither finds it gone half-way."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from recoverctl.adapters.pgexec import Session


class _Raw:
    """An exec socket whose first send lets the other close run, as a thread switch would."""

    def __init__(self) -> None:
        self.on_send: Any = None
        self.sent: list[bytes] = []
        self.closed = 0

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)
        if self.on_send is not None:
            other, self.on_send = self.on_send, None
            other()

    def shutdown(self, _how: int) -> None:
        return None

    def close(self) -> None:
        self.closed += 1


def test_a_close_racing_another_finds_the_socket_whole() -> None:
    raw = _Raw()
    released: list[Any] = []
    engine = SimpleNamespace(exec_open=lambda *_a, **_k: ("e1", raw), exec_release=released.append)
    db: Any = SimpleNamespace(engine=engine, user="vault", database="vault", container=None,
                              exec_user="postgres")  # fmt: skip
    session = Session(db)
    session._open("vault")
    raw.on_send = lambda: session.close(b"")  # the facts thread's close, mid-way
    session.close(b"COMMIT;\n\\q\n")
    assert raw.sent == [b"COMMIT;\n\\q\n"]
    assert (raw.closed, released) == (1, [raw])
    session.close()  # closed: nothing left to do
    assert raw.closed == 1
