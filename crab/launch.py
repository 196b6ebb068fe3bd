"""The `crab` command's entry point: the collector is off while the command
loads (the start-up contract, crab/start_up.py), then click runs it."""

from __future__ import annotations

from crab import start_up


def main() -> None:
    start_up.loading()
    from crab.cli import main as command

    command(prog_name="crab")
