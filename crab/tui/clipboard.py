"""The system clipboard, when one is reachable: through the first copy tool
found (Wayland, X11, macOS). Over ssh or on a bare console there is none;
the caller then asks the terminal itself (OSC 52, `osc52`), which most
terminals and tmux (`set-clipboard on`) honour, and shows the text too."""

from __future__ import annotations

import asyncio
import base64
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


OSC52_MAX = 100_000  # bytes of text: terminals refuse (or truncate) far less


def osc52(text: str) -> str:
    """The escape sequence that asks the terminal to set its clipboard to
    `text` (base64: nothing in it can end the sequence early)."""
    data = base64.b64encode(text.encode()[:OSC52_MAX]).decode("ascii")
    return f"\x1b]52;c;{data}\x07"


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
