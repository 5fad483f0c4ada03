#!/bin/sh
# Bring the schema up to date, then hand over to the real command (gunicorn or runserver).
# `docker exec` does not pass through here, so management commands keep clean stdout.
set -eu

python manage.py vault_wait_db --timeout "${VAULT_DB_WAIT_SECONDS:-60}" --migrate
exec "$@"
