"""`crab login`: signs in without a prompt and saves the session where
`crab chat` keeps it (mode 0600), or in --session-file.

The password comes from stdin (--password-stdin, its first line), never
from argv. Or CRAB_REFRESH_TOKEN holds a refresh token (from another
device's session file): it is exchanged for new tokens (refresh tokens
rotate: the one given stops working) and those are saved."""

from __future__ import annotations

import os
import sys

import click
from grpclib import GRPCError
from grpclib.const import Status

from crab.proto.crab import v1 as pb
from crab.scripting.common import EXIT_SIGNED_OUT, Failure, Target, fail
from crab.tui.account import Account

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
