"""The system clipboard, when one is reachable: through the first copy tool
found (Wayland, X11, macOS). Over ssh or on a bare console there is none;
the caller then shows the text instead."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

# Each reads the text on its standard input.
TOOLS = (
    ("wl-copy",),
    ("xclip", "-selection", "clipboard"),
    ("xsel", "--clipboard", "--input"),
    ("pbcopy",),
)
TIMEOUT = 2.0  # seconds: a tool waiting for a display that is gone


async def put(text: str) -> bool:
    """True once a tool took the text."""
    for tool, *args in TOOLS:
        path = shutil.which(tool)
        if path is None:
            continue
        with contextlib.suppress(OSError, TimeoutError):
            process = await asyncio.create_subprocess_exec(
                path,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                await asyncio.wait_for(process.communicate(text.encode()), TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise
            if process.returncode == 0:
                return True
    return False
