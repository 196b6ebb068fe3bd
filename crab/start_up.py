"""The start-up contract of the `crab` command: the garbage collector is off
while the command loads, and back on after its last import.

Why: importing crab (click, SQLAlchemy, grpclib, prompt_toolkit, the
generated API) allocates many long-lived objects, and the collector's passes
over them cost ~25 ms of start-up, which `crab chat` pays before its first
paint. Nothing imported is garbage, so nothing is lost by not collecting.

Who calls what, in order:

- `crab/launch.py` (the entry point) calls `loading()` before any other import.
- `crab/cli.py` calls `loaded()` for every command but `chat`: their imports
  are done when click runs the group.
- `crab chat` (`crab/tui/app.py`) imports its I/O side only after the first
  paint, and calls `loaded(freeze=True)` after that last import.

`freeze=True` also moves everything alive into the permanent generation: the
client's modules live as long as the process, and full collections no longer
walk all of them (up to ~70 ms every few hundred key presses on a slow machine).
"""

from __future__ import annotations

import gc

__all__ = ["loaded", "loading"]


def loading() -> None:
    """Collection off: called first thing, before the command's imports."""
    gc.disable()


def loaded(*, freeze: bool = False) -> None:
    """Collection back on, after the command's last import. `freeze`: what
    was imported stays out of the collector's way for good."""
    if freeze:
        gc.freeze()
    gc.enable()
