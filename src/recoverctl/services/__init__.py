"""Services: what several commands share (the stack session, stack lookup, the backup
catalogue, dump streams, quick and deep checks, the safety backup). A command's module
imports services, never another command's module."""
