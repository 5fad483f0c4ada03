"""The two progress callbacks every long step takes: a line of what it is doing now, and
how many bytes it has moved so far (the CLI draws them as a spinner and a transfer bar)."""

from __future__ import annotations

from collections.abc import Callable

Step = Callable[[str], None]
OnBytes = Callable[[int], None]
