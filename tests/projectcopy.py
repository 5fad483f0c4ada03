"""A throwaway copy of the vault project: what the e2e tests and the benchmarks run against.

The compose files, .env.example and vault/ are copied to a folder of their own, and an env
file with fresh secrets, the local images and a free loopback port is written there, so a
user's own stacks, env files and backups are never touched."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("docker-compose.yml", "docker-compose.dev.yml", ".env.example")


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(
        REPO / "vault",
        dest / "vault",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".env*", "db.sqlite3"),
    )
    return dest


def env_values(images: Mapping[str, str], *, debug: bool) -> dict[str, str]:
    return {
        "POSTGRES_DB": "vault",
        "POSTGRES_USER": "vault",
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "true" if debug else "false",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "http://localhost:8000,http://127.0.0.1:8000",
        "DJANGO_CORS_ALLOWED_ORIGINS": "http://localhost:5173",
        "DJANGO_SECURE_COOKIES": "false",
        "VAULT_HTTP_PORT": "",  # a free loopback port: never collides with a user's stack
        **images,
    }


def write_env_file(path: Path, values: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path
