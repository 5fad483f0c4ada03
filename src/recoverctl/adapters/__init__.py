"""The edges: Docker engine (SDK), the docker compose CLI, subprocesses, files."""
