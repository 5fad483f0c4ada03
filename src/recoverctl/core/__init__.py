"""Pure logic: no Docker, no subprocess, no file system. Everything here is unit-tested."""
