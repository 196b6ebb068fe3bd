"""TLS: a real server with a trustme certificate, clients that verify it,
clients that cannot, and the warning for plaintext off loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from grpclib.exceptions import StreamTerminatedError

from crab.client.connection import CrabClient, tls_context
from crab.config import Settings
from crab.core.app import Crab
from crab.proto.crab import v1 as pb
from tests.helpers.server import PASSWORD, make_settings

# A refused connection must fail quickly, never hang.
REFUSED_WITHIN = 10.0


@dataclass(frozen=True)
class Certs:
    ca_file: Path
    cert_file: Path
    key_file: Path


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certs = Certs(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    ca.cert_pem.write_to_path(str(certs.ca_file))
    certs.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(certs.key_file))
    return certs


@pytest.fixture
def settings(tmp_path: Path, certs: Certs) -> Settings:
    """Overrides conftest's: conftest's `crab` fixture now serves TLS."""
    return make_settings(tmp_path, tls_cert=certs.cert_file, tls_key=certs.key_file)


TlsClientFactory = Callable[..., Awaitable[CrabClient]]


@pytest.fixture
async def connect_tls(crab: Crab, certs: Certs) -> AsyncIterator[TlsClientFactory]:
    """connect_tls("alice") -> a client over TLS, verifying against the test CA."""
    clients: list[CrabClient] = []

    async def make(name: str) -> CrabClient:
        client = CrabClient("127.0.0.1", crab.port, tls=tls_context(str(certs.ca_file)))
        clients.append(client)
        await client.sign_up(name, PASSWORD)
        return client

    yield make
    for client in clients:
        client.close()


async def test_full_flow_over_tls(connect_tls: TlsClientFactory) -> None:
    alice = await connect_tls("alice")
    bob = await connect_tls("bob")
    async with alice.session() as a_live, bob.session() as b_live:
        room = await alice.chats.create_room(
            pb.CreateRoomRequest(name="secure"), metadata=alice.metadata
        )
        joined = await a_live.wait_for(lambda f: f.chat_joined is not None)
        assert joined.chat_joined.id == room.id

        invite = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id), metadata=alice.metadata
        )
        seen = await b_live.wait_for(lambda f: f.invite_received is not None)
        assert seen.invite_received.id == invite.id

        answer = await bob.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=bob.metadata
        )
        assert answer.accepted and answer.chat.id == room.id
        joined = await b_live.wait_for(lambda f: f.chat_joined is not None)
        assert joined.chat_joined.id == room.id

        cid = await a_live.send(room.id, "over tls")
        ack = await a_live.wait_for(lambda f: f.ack is not None)
        assert ack.ack.client_message_id == cid and ack.ack.message.id == 1
        got = await b_live.wait_for(lambda f: f.message is not None)
        assert got.message.text == "over tls" and got.message.sender.id == alice.user.id

        await b_live.send(room.id, "and back")
        got = await a_live.wait_for(
            lambda f: f.message is not None and f.message.sender.id == bob.user.id
        )
        assert got.message.text == "and back" and got.message.id == 2


async def test_client_that_does_not_trust_the_ca_is_refused(crab: Crab, tmp_path: Path) -> None:
    stranger_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger_ca))
    client = CrabClient("127.0.0.1", crab.port, tls=tls_context(str(stranger_ca)))
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.wait_for(client.sign_up("mallory", PASSWORD), REFUSED_WITHIN)
    finally:
        client.close()


async def test_plaintext_client_to_tls_port_fails(crab: Crab) -> None:
    client = CrabClient("127.0.0.1", crab.port)
    try:
        # The server's TLS handshake fails on the HTTP/2 preface and drops the
        # connection: "Connection lost" (or a reset), never a gRPC answer.
        with pytest.raises((StreamTerminatedError, ConnectionError)):
            await asyncio.wait_for(client.sign_up("plain", PASSWORD), REFUSED_WITHIN)
    finally:
        client.close()


# ---- the plaintext warning ---------------------------------------------------


async def _start_and_stop(settings: Settings) -> None:
    app = await Crab.open(settings)
    try:
        await app.start_server()
    finally:
        await app.close()


def _plaintext_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "crab" and r.levelno >= logging.WARNING and "PLAINTEXT" in r.getMessage()
    ]


async def test_plaintext_on_all_interfaces_warns_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crab"):
        await _start_and_stop(make_settings(tmp_path, host="0.0.0.0"))
    [record] = _plaintext_warnings(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "0.0.0.0" in message and "--tls-cert" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_plaintext_on_loopback_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="crab"):
        await _start_and_stop(make_settings(tmp_path, host=host))
    assert _plaintext_warnings(caplog) == []


async def test_tls_on_all_interfaces_does_not_warn(
    tmp_path: Path, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path, host="0.0.0.0", tls_cert=certs.cert_file, tls_key=certs.key_file
    )
    with caplog.at_level(logging.WARNING, logger="crab"):
        await _start_and_stop(settings)
    assert _plaintext_warnings(caplog) == []


async def test_a_tls_handshake_that_never_comes_is_cut_off(tmp_path: Path, certs: Certs) -> None:
    settings = make_settings(tmp_path, tls_cert=certs.cert_file, tls_key=certs.key_file)
    settings = dataclasses.replace(
        settings, limits=dataclasses.replace(settings.limits, handshake_timeout=0.5)
    )
    crab = await Crab.open(settings)
    try:
        port = await crab.start_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # no ClientHello
        async with asyncio.timeout(30):
            assert await reader.read() == b""  # the server closed it
        writer.close()
    finally:
        await crab.close()
