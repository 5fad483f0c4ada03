"""One function per command: resolve what is needed, do it, return a frozen result."""
