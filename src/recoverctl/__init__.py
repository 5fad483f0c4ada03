"""recoverctl: backups, restores and crash recovery for the vault's compose stacks."""

__version__ = "0.1.0"
