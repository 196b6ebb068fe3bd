"""`crab user ...` and `crab room ...`: an admin's commands, run on the
server's machine straight on its database (docs/admin.md). Output is one
line per row, tab-separated, for people and for scripts alike."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from crab.cli_support import broker_option, make_settings, run, storage_options

if TYPE_CHECKING:
    from crab.config import Settings
    from crab.core.app import Crab

T = TypeVar("T")
MAX_ID = 2**63 - 1  # the database's largest id
BROKER_WAIT = 5.0  # seconds an admin command waits for the servers' broker


# For the commands that sign out or take away what servers hold open.
to_servers = broker_option(
    "The servers' RabbitMQ (amqp://...): their open streams hear at once. "
    "Without it they notice within their --session-check-interval."
)


def _act(
    data_dir: Path | None,
    database: str | None,
    act: Callable[[Crab], Awaitable[T]],
    broker_url: str = "memory://",
) -> T:
    """Opens crab's storage (and the servers' broker, if given), runs `act`;
    a refusal (unknown name, bad input) is a one-line error with exit code
    1, never a traceback."""
    settings = make_settings(data_dir, database, broker_url=broker_url)

    async def go() -> T:
        from crab.core.app import Crab  # only when a command runs: `crab --help` stays fast
        from crab.errors import CrabError

        crab = await _open(Crab, settings)
        try:
            return await act(crab)
        except CrabError as error:
            raise click.ClickException(error.message) from None
        finally:
            await crab.close()

    return run(go())


async def _open(crab: type[Crab], settings: Settings) -> Crab:
    """Crab.open, after a look for the servers' broker (if given): one it
    cannot reach soon is a message, and nothing is changed."""
    url = settings.broker_url
    if url.startswith("memory:"):
        return await crab.open(settings)
    if not url.startswith(("amqp://", "amqps://")):
        raise click.BadParameter(f"{url!r} is not an amqp:// URL", param_hint="--broker")
    from crab.core.broker.amqp import AmqpBroker  # aio-pika only when asked for

    probe = AmqpBroker(url)
    try:
        await probe.start(wait=BROKER_WAIT)
    except Exception as error:
        raise click.ClickException(
            f"the broker is not reachable ({error or type(error).__name__}); nothing was "
            "changed. --broker memory:// acts on the database alone: servers notice "
            "within their --session-check-interval"
        ) from None
    finally:
        await probe.close()
    return await crab.open(settings)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


# ---- crab user -------------------------------------------------------------------


@click.group()
def user() -> None:
    """Manage accounts (for a closed team: `crab serve --no-signup`)."""


@user.command("add")
@storage_options
@click.argument("name")
@click.option("--display-name", default="", help="Shown next to messages [default: NAME]")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(
    data_dir: Path | None, database: str | None, name: str, display_name: str, password_stdin: bool
) -> None:
    """Create an account."""
    password = _password(password_stdin)
    created = _act(
        data_dir, database, lambda crab: crab.accounts.create_user(name, password, display_name)
    )
    click.echo(f"created {created.username} (id {created.id})")


@user.command("link")
@storage_options
@click.argument("name")
@click.option("--subject", required=True, help="The identity's sub claim at the provider.")
@click.option(
    "--issuer",
    envvar="CRAB_OIDC_ISSUER",
    show_envvar=True,
    required=True,
    help="The provider's issuer URL, as given to crab serve --oidc-issuer.",
)
def user_link(
    data_dir: Path | None, database: str | None, name: str, subject: str, issuer: str
) -> None:
    """Let an identity of the team's provider sign in as an existing account."""
    linked = _act(
        data_dir, database, lambda crab: crab.accounts.link_identity(name, subject, issuer)
    )
    click.echo(f"{subject} at {issuer.rstrip('/')} now signs in as {linked.username}")


@user.command("list")
@storage_options
@click.option("--all", "with_deleted", is_flag=True, help="Deleted accounts too.")
def user_list(data_dir: Path | None, database: str | None, with_deleted: bool) -> None:
    """List accounts: id, username, display name, state (active, disabled, deleted)."""
    found = _act(data_dir, database, lambda crab: crab.admin.accounts(with_deleted))
    for account in found:
        click.echo(f"{account.id}\t{account.username}\t{account.display_name}\t{account.state}")


@user.command("reset-password")
@storage_options
@to_servers
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def user_reset_password(
    data_dir: Path | None, database: str | None, broker_url: str, name: str, password_stdin: bool
) -> None:
    """Set a new password for NAME and sign out all their sessions. Accounts
    of the identity provider have no password here: refused."""
    password = _password(password_stdin)
    done = _act(
        data_dir, database, lambda crab: crab.admin.reset_password(name, password), broker_url
    )
    click.echo(f"new password set for {done.username}; all their sessions are signed out")


@user.command("disable")
@storage_options
@to_servers
@click.argument("name")
def user_disable(data_dir: Path | None, database: str | None, broker_url: str, name: str) -> None:
    """Stop NAME signing in (password, identity provider, refresh) and sign
    out all their sessions. The account and its messages stay; `enable`
    lets them back."""
    done = _act(data_dir, database, lambda crab: crab.admin.disable(name), broker_url)
    click.echo(f"{done.username} is disabled; all their sessions are signed out")


@user.command("enable")
@storage_options
@click.argument("name")
def user_enable(data_dir: Path | None, database: str | None, name: str) -> None:
    """Let a disabled account sign in again."""
    done = _act(data_dir, database, lambda crab: crab.admin.enable(name))
    click.echo(f"{done.username} may sign in again")


@user.command("delete")
@storage_options
@to_servers
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def user_delete(
    data_dir: Path | None, database: str | None, broker_url: str, name: str, yes: bool
) -> None:
    """Delete NAME's account. Their sessions, linked identities, chat
    memberships and pending invites go. Their messages stay in their chats,
    shown as from "deleted account"; rooms they own keep going, without an
    owner. The username is free for a new account. Cannot be undone."""
    if not yes:
        click.confirm(
            f"Delete the account {name!r}? Their messages stay, shown as from a deleted account",
            abort=True,
        )
    done = _act(data_dir, database, lambda crab: crab.admin.delete(name), broker_url)
    click.echo(f"deleted {done.username} (id {done.id}); their messages stay")


@user.command("sessions")
@storage_options
@to_servers
@click.argument("name")
@click.option(
    "--revoke", type=click.IntRange(1, MAX_ID), metavar="ID", help="Sign out this session."
)
@click.option("--revoke-all", is_flag=True, help="Sign out every session of NAME.")
def user_sessions(
    data_dir: Path | None,
    database: str | None,
    broker_url: str,
    name: str,
    revoke: int | None,
    revoke_all: bool,
) -> None:
    """List NAME's sign-in sessions (id, created, expires, state), newest
    first; or sign out one (--revoke ID) or all (--revoke-all). crab keeps
    no address nor last use of a session."""
    if revoke is not None and revoke_all:
        raise click.UsageError("give --revoke ID or --revoke-all, not both")
    if revoke is not None:
        session_id = revoke
        done = _act(
            data_dir, database, lambda crab: crab.admin.revoke(name, session_id), broker_url
        )
        click.echo(f"session {session_id} of {done.username} is signed out")
        return
    if revoke_all:
        done = _act(data_dir, database, lambda crab: crab.admin.revoke_all(name), broker_url)
        click.echo(f"all sessions of {done.username} are signed out")
        return
    from crab.core.clock import now

    _, found = _act(data_dir, database, lambda crab: crab.admin.sessions(name))
    moment = now()
    for s in found:
        if s.revoked_at is not None:
            state = f"signed out {_when(s.revoked_at)}"
        else:
            state = "active" if s.active(moment) else "expired"
        click.echo(f"{s.id}\t{_when(s.created_at)}\t{_when(s.expires_at)}\t{state}")


# ---- crab room -------------------------------------------------------------------


@click.group()
def room() -> None:
    """See and delete rooms (personal conversations are not listed)."""


@room.command("list")
@storage_options
def room_list(data_dir: Path | None, database: str | None) -> None:
    """List rooms: id, name, owner, members, messages."""
    found = _act(data_dir, database, lambda crab: crab.admin.rooms())
    for r in found:
        click.echo(f"{r.id}\t{r.name}\t{r.owner}\t{r.members}\t{r.messages}")


@room.command("delete")
@storage_options
@to_servers
@click.argument("room_ref", metavar="ROOM")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def room_delete(
    data_dir: Path | None, database: str | None, broker_url: str, room_ref: str, yes: bool
) -> None:
    """Delete ROOM (an id, or an exact name naming one room) with all its
    messages. Its members' clients see it leave their list. Cannot be undone."""

    async def delete(crab: Crab) -> str:
        found = await crab.admin.room(room_ref)
        if not yes:
            question = (
                f"Delete room {found.id} #{found.name} ({found.members} members, "
                f"{found.messages} messages)?"
            )
            if not click.confirm(question):
                raise click.Abort
        await crab.admin.delete_room(found)
        return f"deleted room {found.id} #{found.name} and its {found.messages} messages"

    click.echo(_act(data_dir, database, delete, broker_url))
