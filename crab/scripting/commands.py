"""The click commands (registered on `crab` by crab/cli.py); their bodies
live in login.py, send.py, tail.py and listing.py, imported when run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from crab.scripting.options import connection_options


@click.command()
@connection_options
@click.argument("username", required=False)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input's first line."
)
@click.option(
    "--sso",
    is_flag=True,
    help="Sign in with the server's identity provider: open the page shown, enter the code.",
)
def login(
    server: str,
    tls: bool,
    ca: str | None,
    session_file: Path | None,
    username: str | None,
    password_stdin: bool,
    sso: bool,
) -> None:
    """Sign in and save the session (shared with `crab chat`).

    Without --password-stdin, CRAB_REFRESH_TOKEN may hold a refresh token
    (USERNAME is then optional); on a terminal, the password is asked for.
    With --sso, the team's identity provider signs you in (no USERNAME)."""
    from crab.scripting.common import Target, run_command
    from crab.scripting.login import login as do_login
    from crab.scripting.login import login_sso

    target = Target.from_options(server, tls, ca, session_file)
    if sso:
        if username is not None or password_stdin:
            raise click.UsageError(
                "--sso signs in at the identity provider: no USERNAME nor password"
            )
        run_command(login_sso(target))
        return
    run_command(do_login(target, username, password_stdin))


@click.command()
@connection_options
@click.argument("chat")
@click.argument("text", required=False)
@click.option("--lines", is_flag=True, help="One message per line of standard input.")
@click.option(
    "--wait",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds to keep retrying while the server is unreachable or rate-limits.",
)
def send(
    server: str,
    tls: bool,
    ca: str | None,
    session_file: Path | None,
    chat: str,
    text: str | None,
    lines: bool,
    wait: float,
) -> None:
    """Send TEXT (or standard input) to CHAT: a room's name, @username or an id.

    Exit code 0 once every message is stored; 1 refused (unknown chat, too
    long...), 3 signed out, 4 server unreachable."""
    from crab.scripting.common import Target, run_command
    from crab.scripting.send import send as do_send

    target = Target.from_options(server, tls, ca, session_file)
    if text is not None and lines:
        raise click.UsageError("--lines reads standard input: give no TEXT")
    stdin = "" if text is not None else sys.stdin.read()
    run_command(do_send(target, chat, text, stdin, lines, wait))


@click.command()
@connection_options
@click.argument("chats", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="JSON lines (schema: README).")
@click.option(
    "--history",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Messages of each chat shown before the live ones.",
)
def tail(
    server: str,
    tls: bool,
    ca: str | None,
    session_file: Path | None,
    chats: tuple[str, ...],
    as_json: bool,
    history: int,
) -> None:
    """Print the last messages of CHATS (default: all mine), then new ones live
    until Ctrl-C; resumes after an outage with nothing lost or repeated."""
    from crab.scripting.common import Target, run_command
    from crab.scripting.tail import tail as do_tail

    target = Target.from_options(server, tls, ca, session_file)
    run_command(do_tail(target, chats, as_json, history))


@click.command()
@connection_options
@click.option("--json", "as_json", is_flag=True, help="One JSON array (schema: README).")
def chats(server: str, tls: bool, ca: str | None, session_file: Path | None, as_json: bool) -> None:
    """List my chats: id, name (@username for a person), unread count."""
    from crab.scripting.common import Target, run_command
    from crab.scripting.listing import list_chats

    run_command(list_chats(Target.from_options(server, tls, ca, session_file), as_json))


@click.command()
@connection_options
@click.option("--json", "as_json", is_flag=True, help='One JSON object: "received", "sent".')
def invites(
    server: str, tls: bool, ca: str | None, session_file: Path | None, as_json: bool
) -> None:
    """List pending invites, received then sent."""
    from crab.scripting.common import Target, run_command
    from crab.scripting.listing import list_invites

    run_command(list_invites(Target.from_options(server, tls, ca, session_file), as_json))


COMMANDS = (login, send, tail, chats, invites)
