"""The Typer application: every command is registered here, and every way a command can
end (a result, an error, a usage error, Ctrl-C, SIGTERM, a bug) becomes its stderr lines,
its log lines, its --json envelope and its exit status here, in one place."""

from __future__ import annotations

import logging
import shlex
import signal
import warnings
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer
from typer import _click

# Typer 0.29 vendors click (pyproject pins <0.30); its usage errors have no public name.
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from recoverctl import __version__, signals
from recoverctl import log as logs
from recoverctl.cli import crash, render
from recoverctl.errors import EXIT_OK, ErrorCode, Interrupted, RecoverctlError

log = logging.getLogger("recoverctl")


class _Group(TyperGroup):
    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        # Only the root's own options (--log-file FILE, --verbose) fail to parse here.
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            if not _wants_json(args):
                raise
            render.begin(None, json=True)
            _end(_usage_error(exc, None))

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        # The first point where both the command and its arguments are known.
        _begin(self, ctx, args)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: _click.Context) -> Any:
        try:
            super().invoke(ctx)
        except typer.Exit as exc:
            if exc.exit_code == EXIT_OK:  # --help and the like: their own text, no envelope
                logs.stop()
                raise
            # A command should raise a RecoverctlError, whose code scripts can read; this
            # keeps a bare Exit working, as code `failed` in the envelope and the log.
            stopped = RecoverctlError(f"Stopped with exit status {exc.exit_code}.")
            if not render.json_mode.get():
                _log_end(stopped)
                raise
            _end(stopped)
        except NoArgsIsHelpError:
            logs.stop()
            raise
        except UsageError as exc:
            error = _usage_error(exc, render.current_command())
            if not render.json_mode.get():
                render.error(error, show=False)  # click prints it, in its own box
                _log_end(error)
                raise
            _end(error)
        except RecoverctlError as exc:
            _end(exc)
        except (KeyboardInterrupt, typer.Abort):
            _end(Interrupted("Interrupted before finishing."))
        except Exception as exc:  # the one broad catch: a bug, told in one line, kept in a file
            _end(crash.internal_error(exc, verbose=_verbose))
        _end(None)


def _wants_json(args: list[str]) -> bool:
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _command_path(group: TyperGroup, ctx: _click.Context, args: list[str]) -> str | None:
    names: list[str] = []
    command: _click.Command | None = group
    for token in args:
        if not isinstance(command, TyperGroup) or token.startswith("-"):
            break
        command = command.get_command(ctx, token)
        if command is None:
            break
        names.append(token)
    return " ".join(names) or None


_verbose = False


def _begin(group: TyperGroup, ctx: _click.Context, args: list[str]) -> None:
    global _verbose
    _verbose = bool(ctx.params.get("verbose"))
    before = args[: args.index("--")] if "--" in args else args
    render.begin(_command_path(group, ctx, args), json=_wants_json(args))
    if "--help" in before or "-h" in before:
        return  # a help text is not a run worth a log line
    log_file: Path | None = ctx.params.get("log_file")
    logs.start(
        render.current_command(),
        file=log_file.expanduser() if log_file is not None else None,
        verbose=bool(ctx.params.get("verbose")),
        echo=render.echo,
        warn=render.warn,
    )
    log.info(f"start: recoverctl {__version__}: {shlex.join(args)}")


def _usage_error(exc: UsageError, command: str | None) -> RecoverctlError:
    where = f"recoverctl {command} --help" if command else "recoverctl --help"
    return RecoverctlError(
        exc.format_message(), f"`{where}` lists the options and arguments.", code=ErrorCode.USAGE
    )


def _end(error: RecoverctlError | None) -> NoReturn:
    """Every run ends here: the error's lines, the envelope, the log's last line, the status."""
    if error is not None:
        error = signals.as_termination(error)
        render.error(error)
    status = error.exit_code if error is not None else EXIT_OK
    if render.json_mode.get():
        render.write_envelope(error, status)
    _log_end(error)
    raise typer.Exit(status)


def _log_end(error: RecoverctlError | None) -> None:
    seconds = f"{render.elapsed():.1f} s"
    if error is None:
        log.info(f"done: ok in {seconds}")
    else:
        log.info(f"done: failed, {error.code} (exit {error.exit_code}) after {seconds}")
    logs.stop()


app = typer.Typer(
    cls=_Group,
    name="recoverctl",
    help="Backups, restores and crash recovery for the vault's docker compose stacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recoverctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also print each step, with its time, on stderr.")
    ] = False,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            envvar="RECOVERCTL_LOG_FILE",
            dir_okay=False,
            metavar="FILE",
            help="Append a timestamped line per step, warning and error to FILE (made 0600). "
            "Default: log_file in the settings file.",
        ),
    ] = None,
) -> None:
    """Backups, restores and crash recovery for the vault's docker compose stacks.

    Global options go before the command: recoverctl --verbose --log-file FILE backup."""
    # The options are read by _Group when the command starts: nothing to do here.


def _register() -> None:
    # One module per command (or group), named after it; `recoverctl --help` lists the
    # commands in this order, then the groups (keys, schedule, env) in theirs.
    from recoverctl.cli import (
        backup,
        doctor,
        drill,
        env,
        init,
        keys,
        pitr,
        prune,
        pull,
        push,
        recover,
        restore,
        routine,
        schedule,
        stack,
        upgrade_postgres,
        verify,
    )
    from recoverctl.cli import list as listing

    app.command()(init.init)
    app.command()(stack.up)
    app.command()(stack.down)
    app.command()(stack.ps)
    app.command()(stack.logs)
    app.command()(stack.restart)
    app.command()(backup.backup)
    app.command("list")(listing.list_)
    app.command()(verify.verify)
    app.command()(restore.restore)
    app.command()(doctor.doctor)
    app.add_typer(keys.keys_app, name="keys")
    app.command()(recover.recover)
    app.command()(push.push)
    app.command()(pull.pull)
    app.command()(prune.prune)
    app.command()(routine.routine)
    app.add_typer(schedule.schedule_app, name="schedule")
    app.command()(drill.drill)
    app.command("upgrade-postgres")(upgrade_postgres.upgrade_postgres)
    app.add_typer(env.env_app, name="env")
    app.add_typer(pitr.pitr_app, name="pitr")


_register()


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM takes the same careful way out as Ctrl-C: partial files removed, rollbacks run.
    signals.note_sigterm()  # what _end, and the routine's record, read it from
    raise KeyboardInterrupt


def main() -> None:
    # requests silences urllib3's note that PySocks is missing as it imports it; a thread
    # importing botocore at that moment (the S3 prewarm) can undo that, since
    # warnings.catch_warnings is not thread-safe: the note would break the two-line error.
    warnings.filterwarnings("ignore", message="SOCKS support in urllib3")
    signal.signal(signal.SIGTERM, _on_sigterm)
    app()
