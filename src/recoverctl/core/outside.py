"""The rules for bytes recoverctl did not write itself (a manifest, a record, a listing):
read with bounds, judged, never trusted.

Datetimes: a timestamp without a zone is read as UTC (what recoverctl writes, and what a
hand edit of one of its files most likely meant); one outside 1970 to 9000 is refused,
since it could not have been written by a backup, and date arithmetic on it overflows.

JSON: at most MAX_JSON_BYTES, nested at most MAX_JSON_DEPTH deep (Python's parser would
otherwise raise RecursionError); any problem is a ValueError naming it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def as_aware(value: datetime) -> datetime:
    """The one rule for a datetime read from a file: naive is UTC; the range is bounded."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= aware <= LATEST:
        raise ValueError(f"{value.isoformat()} is outside 1970 to 9000: not a real timestamp")
    return aware


# A datetime field of a model read from a file.
AwareDatetime = Annotated[datetime, AfterValidator(as_aware)]


def read_json(raw: bytes | str) -> Any:
    """Parses JSON within the bounds above; ValueError (with its cause) for anything else."""
    if len(raw) > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES // (1024 * 1024)} MiB")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        # The message and the position only: the exception's text could quote the input.
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError:  # an integer beyond Python's digit limit, and the like
        raise ValueError("a number too large to read") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}")
    return data


def _depth(value: Any) -> int:
    """Depth by walking, without recursion (the parser's recursion limit bounds it)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                stack.extend((child, depth + 1) for child in item)
    return deepest
