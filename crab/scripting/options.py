"""The options every scripting command takes. Light on purpose: crab/cli.py
imports it for every command, `crab chat` included, whose first paint must
not wait for grpclib (crab/start_up.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SERVER = "127.0.0.1:50051"


def connection_options(func: F) -> F:
    """--server, --tls, --ca and --session-file, as `crab chat` takes them."""
    func = server_options(func)
    func = click.option(
        "--session-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="CRAB_SESSION_FILE",
        show_envvar=True,
        help="Where the session is kept [default: crab chat's: sessions.json in "
        "$CRAB_CONFIG_DIR or the user's config directory].",
    )(func)
    return func


def server_options(func: F) -> F:
    """--server, --tls and --ca: which crab server, and how to trust it
    (`crab chat` and the scriptable commands alike)."""
    func = click.option(
        "--ca",
        type=click.Path(exists=True, dir_okay=False),
        envvar="CRAB_CA",
        default=None,
        help="Verify the server against this CA file (implies --tls).",
    )(func)
    func = click.option(
        "--tls", is_flag=True, envvar="CRAB_TLS", help="Connect with TLS (the system CAs)."
    )(func)
    func = click.option(
        "--server",
        default=DEFAULT_SERVER,
        show_default=True,
        envvar="CRAB_SERVER",
        show_envvar=True,
        help="HOST:PORT of a crab server.",
    )(func)
    return func
