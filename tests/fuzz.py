"""Strategies for bad input: valid samples mutated the way real files go bad (cut, a byte
flipped, a value of the wrong type, huge numbers, deep nesting, unicode, NUL, CRLF, a BOM,
very long lines), and random bytes. RECOVERCTL_FUZZ_EXAMPLES runs more of each (the
suite's default keeps `make test` short)."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("RECOVERCTL_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

NASTY: list[bytes] = [
    b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r\n", b"\r", b"\n\n", b'"', b"\\", b"{", b"]",
    "é".encode(), "١٢٣".encode(), "\u202e".encode(), "\U0001f600".encode(),
    b"9" * 5000, b"[" * 3000, b'{"a":' * 1500, b"x" * 200_000, b"1e999", b"-1", b"null",
    b"0001-01-01T00:00:00", b"9999-12-31T23:59:59", b"2026-02-30T12:00:00",
]  # fmt: skip
WRONG_VALUES: list[Any] = [
    None, True, -1, 0, 1.5, "", "x", "é\u0000", [], {}, [[[]]], {"a": {"b": {}}},
    "2026-05-01T03:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
    "not a date", 2**70, -(2**70), "x" * 10_000,
]  # fmt: skip


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    n = len(valid)
    at = st.integers(min_value=0, max_value=max(0, n - 1))
    return st.one_of(
        st.integers(min_value=0, max_value=n).map(lambda i: valid[:i]),
        st.tuples(at, st.integers(min_value=1, max_value=255)).map(
            lambda t: valid[: t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1 :] if n else b""
        ),
        st.tuples(at, st.sampled_from(NASTY)).map(lambda t: valid[: t[0]] + t[1] + valid[t[0] :]),
        st.just(b"\xef\xbb\xbf" + valid),
        st.just(valid.replace(b"\n", b"\r\n")),
        st.binary(max_size=3000),
    )


def json_mutated(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Mutated bytes of the document, and the document with one value (at any depth)
    replaced by one of the wrong kind, or an integer beyond Python's digit limit."""
    paths = list(_paths(valid))

    def replace(path: tuple[Any, ...], value: Any) -> bytes:
        doc = json.loads(json.dumps(valid))
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return json.dumps(doc).encode()

    def huge(path: tuple[Any, ...]) -> bytes:
        return replace(path, "HUGE").replace(b'"HUGE"', b"1" * 4301)

    raw = json.dumps(valid).encode()
    return st.one_of(
        mutated(raw),
        st.tuples(st.sampled_from(paths), st.sampled_from(WRONG_VALUES)).map(lambda t: replace(*t)),
        st.sampled_from(paths).map(huge),
    )


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    )
    for key, value in items:
        found.append((*prefix, key))
        found += _paths(value, (*prefix, key))
    return found
