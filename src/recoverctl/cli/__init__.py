"""Typer commands: parse, resolve settings, call one action, render its result."""
