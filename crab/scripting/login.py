"""`crab login`: signs in without a prompt and saves the session where
`crab chat` keeps it (mode 0600), or in --session-file.

The password comes from stdin (--password-stdin, its first line), never
from argv. Or CRAB_REFRESH_TOKEN holds a refresh token (from another
device's session file): it is exchanged for new tokens (refresh tokens
rotate: the one given stops working) and those are saved.

With --sso, the server's identity provider signs in instead: the device
flow (RFC 8628) prints the page and the code to stderr (and the page as a
QR code when stderr is a terminal), waits for the person to approve, then
trades the provider's ID token for crab's own tokens."""

from __future__ import annotations

import os
import sys

import click
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.device_flow import DeviceCode, DeviceFlow, DeviceFlowError
from crab.proto.crab import v1 as pb
from crab.scripting.common import (
    EXIT_REFUSED,
    EXIT_SIGNED_OUT,
    EXIT_UNREACHABLE,
    Failure,
    Target,
    fail,
)
from crab.tui.account import Account
from crab.tui.from_server import flow_provider, provider, provider_code
from crab.tui.views import qr

TOKEN_VARIABLE = "CRAB_REFRESH_TOKEN"


def read_password(password_stdin: bool) -> str | None:
    """The password, or None when a token from the environment is used."""
    if password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            fail("--password-stdin: no password on standard input")
        return password
    if os.environ.get(TOKEN_VARIABLE):
        return None
    if not sys.stdin.isatty():
        fail(f"no password: give --password-stdin, or a refresh token in ${TOKEN_VARIABLE}")
    typed: str = click.prompt("Password", hide_input=True)
    return typed


async def login(target: Target, username: str | None, password_stdin: bool) -> None:
    password = read_password(password_stdin)
    client = target.client()
    account = Account(client, target.sessions, target.server, lambda reason: None)
    try:
        if password is None:
            token = os.environ[TOKEN_VARIABLE]
            client.tokens = pb.Tokens(refresh_token=token)
            try:
                await client.refresh()
            except GRPCError as error:
                if error.status is Status.UNAUTHENTICATED:
                    raise Failure(
                        f"${TOKEN_VARIABLE} was refused: {error.message}", EXIT_SIGNED_OUT
                    ) from None
                raise
            signed_in_as = client.user.username
            if username is not None and username != signed_in_as:
                fail(f"${TOKEN_VARIABLE} belongs to {signed_in_as}, not {username}")
        else:
            if username is None:
                fail("which account? crab login USERNAME")
            try:
                await client.sign_in(username, password)
            except GRPCError as error:
                if error.status is Status.UNAUTHENTICATED:
                    raise Failure(error.message or "wrong username or password") from None
                raise
        account.save()
    finally:
        client.close()
    click.echo(f"signed in to {target.server} as {client.user.username}", err=True)


async def login_sso(target: Target) -> None:
    client = target.client()
    account = Account(client, target.sessions, target.server, lambda reason: None)
    try:
        try:
            offered = provider((await client.sign_in_options()).provider)
        except GRPCError as error:
            if error.status is not Status.UNIMPLEMENTED:
                raise
            offered = None  # a server older than single sign-on
        if offered is None:
            fail(f"{target.server} has no identity provider: sign in with a password")
        flow = DeviceFlow(flow_provider(offered))
        try:
            code = await flow.start()
            _show(offered.name, code)
            id_token = await flow.id_token(code)
        except DeviceFlowError as error:
            exit_code = EXIT_UNREACHABLE if error.reason == "unavailable" else EXIT_REFUSED
            raise Failure(str(error), exit_code) from None
        finally:
            await flow.aclose()
        try:
            await client.sign_in_with_provider(id_token)
        except GRPCError as error:
            if error.status is Status.UNAUTHENTICATED:
                raise Failure(f"{target.server} refused the sign-in: {error.message}") from None
            raise
        account.save()
    finally:
        client.close()
    click.echo(f"signed in to {target.server} as {client.user.username}", err=True)


def _show(name: str, found: DeviceCode) -> None:
    """The page and the code on stderr (stdout stays for what scripts read)."""
    code = provider_code(found)
    page = code.verification_uri or code.verification_uri_complete
    click.echo(f"To sign in with {name}, open {page}", err=True)
    click.echo(f"and enter the code {code.user_code}", err=True)
    drawing = qr.ansi(code.verification_uri_complete or page) if sys.stderr.isatty() else ""
    if drawing:
        click.echo("or scan this with a phone:", err=True)
        click.echo(drawing, err=True, nl=False)
    click.echo(f"waiting for you at {name}... (Ctrl-C gives up)", err=True)
