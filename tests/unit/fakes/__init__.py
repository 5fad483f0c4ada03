"""In-memory stand-ins for the Docker engine and the db container's PostgreSQL, for fast
unit tests of the actions (the e2e tests run the real ones). They model just enough to be
honest; each module says what it models:

- faults.py: scripted failures at named points (Fault), for the engine and the db;
- dumps.py: dumps as bytes (a custom archive's real header, a plain dump's \\restrict pair);
- engine.py: FakeEngine, containers with compose labels, running or stopped, healthy or not;
- database.py: FakeDb and FakeSnapshot, answering the exact SQL of core/pg.py (sql.py);
- project.py: a project on disk and the real session over the fakes;
- backups.py: backups on disk as `recoverctl backup` leaves them (file, manifest, record);
- sql.py: the statements FakeDb answers, which the e2e suite runs on a real server.
"""

from .backups import (
    OFFSITE_TABLES,
    make_backup,
    make_settings,
    write_backup,
    write_backup_file,
    write_manifest,
)
from .database import (
    IN_USE_STDERR,
    RUN_KINDS,
    SQL_KINDS,
    FakeDb,
    FakeSnapshot,
    in_use,
    load_skips_copy_of,
)
from .dumps import (
    PG_DUMP_VERSION,
    RESTRICT_KEY,
    SERVER_VERSION,
    Tables,
    custom_dump,
    custom_header,
    parse_dump,
    plain_dump,
)
from .engine import ENGINE_KINDS, PROJECT, FakeEngine, engine_lost
from .faults import Fault, Faults
from .project import (
    COMPOSE_YML,
    ENV_FILE,
    ENV_SECRET,
    FakeClock,
    FakeSession,
    FakeStack,
    app_tables,
    make_stack,
)

__all__ = [
    "COMPOSE_YML",
    "ENGINE_KINDS",
    "ENV_FILE",
    "ENV_SECRET",
    "IN_USE_STDERR",
    "OFFSITE_TABLES",
    "PG_DUMP_VERSION",
    "PROJECT",
    "RESTRICT_KEY",
    "RUN_KINDS",
    "SERVER_VERSION",
    "SQL_KINDS",
    "FakeClock",
    "FakeDb",
    "FakeEngine",
    "FakeSession",
    "FakeSnapshot",
    "FakeStack",
    "Fault",
    "Faults",
    "Tables",
    "app_tables",
    "custom_dump",
    "custom_header",
    "engine_lost",
    "in_use",
    "load_skips_copy_of",
    "make_backup",
    "make_settings",
    "make_stack",
    "parse_dump",
    "plain_dump",
    "write_backup",
    "write_backup_file",
    "write_manifest",
]
