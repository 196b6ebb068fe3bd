"""The `crab` command's entry point. Imports allocate many objects and the
garbage collector's passes over them cost ~25 ms of start-up, which
`crab chat` pays before its first paint: collection is off while the
command loads, and back on once it has (cli.main for every command but
chat, which turns it on after its last import: tui/app.py)."""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    from crab.cli import main as command

    command(prog_name="crab")
