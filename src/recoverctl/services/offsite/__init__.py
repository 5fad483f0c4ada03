"""Off-site copies: push a local backup to the configured targets, list what a target holds,
check a sealed copy where it lies, and pull one back as an ordinary local backup.

One module per job: lookup (the targets by name, from the settings), listing (what a
target holds, a name resolved to a complete copy), push, upload (objects first, the commit
marker last: also the env files' push), check (a sealed copy checked where it lies), pull,
and results (what each hands back). Names on a target are in core/offsite.py.

Each project and stack has its own namespace on a target (`PROJECT/STACK/` inside its path
or prefix, core/offsite.py), and every remote manifest records the project and stack: a
copy of another one is never listed, taken as latest, replaced or removed.
"""

from recoverctl.core.progress import OnBytes, Step
from recoverctl.services.offsite.check import check_sealed
from recoverctl.services.offsite.listing import LATEST, judge, list_target, resolve_remote
from recoverctl.services.offsite.lookup import (
    check_source,
    open_target,
    owner,
    owner_of,
    prewarm,
    target_names,
    unknown_target,
)
from recoverctl.services.offsite.pull import pull, scratch_dir
from recoverctl.services.offsite.push import push_backup
from recoverctl.services.offsite.results import (
    Copy,
    CopyStatus,
    OffsiteFailed,
    Pulled,
    PushResult,
    SealedCheck,
    TargetListing,
    failure,
)

__all__ = [
    "LATEST",
    "Copy",
    "CopyStatus",
    "OffsiteFailed",
    "OnBytes",
    "Pulled",
    "PushResult",
    "SealedCheck",
    "Step",
    "TargetListing",
    "check_sealed",
    "check_source",
    "failure",
    "judge",
    "list_target",
    "open_target",
    "owner",
    "owner_of",
    "prewarm",
    "pull",
    "push_backup",
    "resolve_remote",
    "scratch_dir",
    "target_names",
    "unknown_target",
]
