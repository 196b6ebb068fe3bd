"""The scriptable `crab` (login, send, tail, chats, invites) as a script
uses it: the installed `.venv/bin/crab` run as a subprocess against a real
`crab serve` process, checked by what another client sees and by exit
codes; `crab tail` followed across a server killed and restarted."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from crab.client.connection import CrabClient, tls_context
from crab.proto.crab import v1 as pb
from tests.helpers.process import CrabProcess, crab_env, free_port
from tests.helpers.scripting import (
    CRAB,
    LINE_TIMEOUT,
    Lines,
    World,
    bob_sends,
    client_for,
    crab,
    set_up,
    start_server,
    texts_in,
)
from tests.helpers.server import PASSWORD

pytestmark = pytest.mark.slow  # crab serve as a real process, crab as commands


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    server = start_server(tmp_path / "data", free_port())
    found = World(server, tmp_path / "config" / "session.json", 0, 0)
    try:
        found.room_id, found.bob_id = asyncio.run(set_up(server.port))
        done = found.crab("login", "alice", "--password-stdin", input=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        yield found
    finally:
        found.server.stop()  # a test may have restarted it


# ---- login ------------------------------------------------------------------


def test_login_saves_a_private_session_and_refuses_a_wrong_password(
    world: World, tmp_path: Path
) -> None:
    mode = stat.S_IMODE(world.session_file.stat().st_mode)
    assert mode == 0o600
    saved = json.loads(world.session_file.read_text())
    assert saved[world.server.target]["username"] == "alice"

    other = tmp_path / "other.json"
    wrong = crab(
        "login", "--server", world.server.target, "--session-file", str(other),
        "alice", "--password-stdin", input="not the password\n",
    )  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("crab: ") and wrong.stderr.count("\n") == 1
    assert "Traceback" not in wrong.stderr
    assert not other.exists()


def test_login_with_a_refresh_token_from_the_environment(world: World, tmp_path: Path) -> None:
    token = json.loads(world.session_file.read_text())[world.server.target]["refresh_token"]
    other = tmp_path / "from-token.json"
    done = subprocess.run(
        [str(CRAB), "login", "--server", world.server.target, "--session-file", str(other)],
        capture_output=True,
        text=True,
        env=crab_env({"CRAB_REFRESH_TOKEN": token}),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(other.read_text())[world.server.target]["username"] == "alice"
    listed = crab("chats", "--server", world.server.target, "--session-file", str(other))
    assert listed.returncode == 0 and "general" in listed.stdout


# ---- send -------------------------------------------------------------------


def test_send_from_arguments_and_from_stdin_line_by_line(world: World) -> None:
    done = world.crab("send", "general", "hello from a script")
    assert done.returncode == 0, done.stderr
    done = world.crab("send", "general", "--lines", input="one\ntwo\n\nthree\n")
    assert done.returncode == 0, done.stderr
    done = world.crab("send", str(world.room_id), input="whole\nstdin\n")
    assert done.returncode == 0, done.stderr
    assert texts_in(world.server.port, world.room_id) == [
        "hello from a script",
        "one",
        "two",
        "three",
        "whole\nstdin",
    ]


def test_send_exit_codes_say_why_and_nothing_is_stored(world: World, tmp_path: Path) -> None:
    world.crab("send", "general", "first")

    unknown = world.crab("send", "no-such-room", "hi")
    assert unknown.returncode == 1
    assert "unknown chat" in unknown.stderr and unknown.stderr.count("\n") == 1
    not_mine = world.crab("send", "@nobody", "hi")
    assert not_mine.returncode == 1

    too_long = world.crab("send", "general", "x" * 4001)
    assert too_long.returncode == 1
    assert "4000" in too_long.stderr and "Traceback" not in too_long.stderr

    empty = world.crab("send", "general", input="\n")
    assert empty.returncode == 1

    # A session the server does not know: signed out.
    forged = tmp_path / "forged.json"
    forged.write_text(
        json.dumps(
            {
                world.server.target: {
                    "server": world.server.target,
                    "username": "alice",
                    "access_token": "not-a-token",
                    "refresh_token": "not-a-token",
                }
            }
        )
    )
    signed_out = crab(
        "send", "--server", world.server.target, "--session-file", str(forged), "general", "hi"
    )
    assert signed_out.returncode == 3, signed_out.stderr
    assert "crab login" in signed_out.stderr
    never = crab(
        "send", "--server", world.server.target, "--session-file", str(tmp_path / "no.json"),
        "general", "hi",
    )  # fmt: skip
    assert never.returncode == 3

    assert texts_in(world.server.port, world.room_id) == ["first"]

    world.server.stop()
    down = world.crab("send", "general", "--wait", "0.5", "hi")
    assert down.returncode == 4
    assert down.stderr.startswith("crab: ") and down.stderr.count("\n") == 1


def test_bad_server_address_is_one_line(tmp_path: Path) -> None:
    done = crab("chats", "--server", "nowhere", "--session-file", str(tmp_path / "s.json"))
    assert done.returncode == 2 and "HOST:PORT" in done.stderr


# ---- chats and invites --------------------------------------------------------


def test_chats_and_invites_as_json(world: World) -> None:
    chats = world.crab("chats", "--json")
    assert chats.returncode == 0, chats.stderr
    found = json.loads(chats.stdout)
    assert [(c["id"], c["kind"], c["name"]) for c in found] == [(world.room_id, "room", "general")]
    invites = world.crab("invites", "--json")
    assert invites.returncode == 0, invites.stderr
    pending = json.loads(invites.stdout)
    assert pending["received"] == []
    assert [(i["kind"], i["from"], i["to"]) for i in pending["sent"]] == [
        ("direct", "alice", "bob")
    ]
    plain = world.crab("invites")
    assert plain.returncode == 0 and "to bob" in plain.stdout


# ---- tail -------------------------------------------------------------------


def test_tail_json_history_then_live(world: World) -> None:
    world.crab("send", "general", "--lines", input="m1\nm2\nm3\n")
    tail = Lines("tail", *world.options, "general", "--json", "--history", "2")
    try:
        history = tail.records(2)
        assert [(r["text"], r["sender"]) for r in history] == [("m2", "alice"), ("m3", "alice")]
        first = history[0]
        assert set(first) == {
            "chat", "chat_name", "id", "sender", "sender_name", "text", "sent_at"
        }  # fmt: skip
        assert first["chat"] == world.room_id and first["chat_name"] == "general"
        assert first["sent_at"].endswith("Z")
        bob_sends(world.server.port, world.room_id, "live from bob")
        (live,) = tail.records(1)
        assert (live["text"], live["sender"], live["id"]) == ("live from bob", "bob", 4)
    finally:
        code, errors = tail.stop()
    assert code == 0, errors  # Ctrl-C
    assert "Traceback" not in errors


@pytest.mark.parametrize("how", ["kill", "terminate"])
def test_tail_resumes_after_a_server_restart_without_gap_or_duplicate(
    world: World, tmp_path: Path, how: str
) -> None:
    """kill -9 (the connection just drops) or SIGTERM (the server ends the
    stream with UNAVAILABLE first)."""
    port = world.server.port
    world.crab("send", "general", "before")
    tail = Lines("tail", *world.options, "--json", "--history", "5")
    try:
        assert [r["text"] for r in tail.records(1)] == ["before"]
        bob_sends(port, world.room_id, "live 1")
        assert [r["text"] for r in tail.records(1)] == ["live 1"]

        getattr(world.server, how)()
        world.server.stop()  # waited on, its log closed
        world.server = start_server(tmp_path / "data", port)
        # Sent while tail is still away: replayed when it resumes.
        bob_sends(port, world.room_id, "while away 1", "while away 2")
        seen = tail.records(2)
        bob_sends(port, world.room_id, "after")
        seen += tail.records(1)
        assert [r["text"] for r in seen] == ["while away 1", "while away 2", "after"]
        assert [r["id"] for r in seen] == [3, 4, 5]
        assert tail.nothing_more()
    finally:
        code, errors = tail.stop()
    assert code == 0, errors
    assert "reconnecting" in errors and "Traceback" not in errors


def test_tail_into_a_closed_pipe_exits_quietly(world: World) -> None:
    world.crab("send", "general", "--lines", input="a\nb\n")
    reader, writer = os.pipe()
    proc = subprocess.Popen(
        [str(CRAB), "tail", *world.options, "--history", "2"],
        stdin=subprocess.DEVNULL,
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        env=crab_env(),
    )
    os.close(writer)
    with os.fdopen(reader) as out:
        assert out.readline().endswith("alice: a\n")  # then the reader goes, as `head -1` does
    # No message comes after: tail notices the reader has gone by itself.
    try:
        code = proc.wait(LINE_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    with proc.stderr:
        assert (code, proc.stderr.read()) == (0, "")


def test_tail_of_an_unknown_chat_is_one_line(world: World) -> None:
    done = world.crab("tail", "nowhere", "--history", "0")
    assert done.returncode == 1 and "unknown chat" in done.stderr


def test_an_expired_access_token_is_refreshed_and_saved(world: World) -> None:
    target = world.server.target
    saved = json.loads(world.session_file.read_text())
    before = saved[target]
    saved[target] = before | {"access_token": "expired-long-ago"}
    world.session_file.write_text(json.dumps(saved))

    done = world.crab("send", "general", "after a refresh")
    assert done.returncode == 0, done.stderr
    after = json.loads(world.session_file.read_text())[target]
    assert after["access_token"] != "expired-long-ago"
    assert after["refresh_token"] != before["refresh_token"]  # rotated, and kept
    assert stat.S_IMODE(world.session_file.stat().st_mode) == 0o600
    assert texts_in(world.server.port, world.room_id) == ["after a refresh"]
    assert world.crab("chats").returncode == 0  # the saved tokens work


def test_send_to_a_person_by_username(world: World) -> None:
    async def accept() -> int:
        bob = await client_for(world.server.port, "bob")
        try:
            (invite,) = (await bob.my_invites()).received
            answer = await bob.answer_invite(invite.id, accept=True)
            assert answer.chat is not None
            chat_id: int = answer.chat.id
            return chat_id
        finally:
            bob.close()

    chat_id = asyncio.run(accept())
    done = world.crab("send", "@bob", "hello bob")
    assert done.returncode == 0, done.stderr
    assert texts_in(world.server.port, chat_id) == ["hello bob"]
    listed = json.loads(world.crab("chats", "--json").stdout)
    assert {c["name"] for c in listed} == {"general", "@bob"}


def test_a_session_ended_on_the_server_is_signed_out(world: World) -> None:
    saved = json.loads(world.session_file.read_text())[world.server.target]

    async def sign_out() -> None:
        client = CrabClient("127.0.0.1", world.server.port)
        client.tokens = pb.Tokens(
            access_token=saved["access_token"], refresh_token=saved["refresh_token"]
        )
        try:
            await client.sign_out()
        finally:
            client.close()

    asyncio.run(sign_out())
    for command in (["send", "general", "hi"], ["tail", "--history", "0"], ["chats"]):
        done = world.crab(*command)
        assert done.returncode == 3, (command, done.stdout, done.stderr)
        assert "crab login" in done.stderr and done.stderr.count("\n") == 1


def test_send_waits_for_a_server_that_comes_back(world: World, tmp_path: Path) -> None:
    port = world.server.port
    world.server.terminate()
    world.server.stop()
    proc = subprocess.Popen(
        [str(CRAB), "send", *world.options, "general", "--wait", "60", "--lines"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=crab_env(),
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write("once\ntwice\n")
        proc.stdin.close()  # crab send has its text and tries the server
        # The server comes back while crab send is retrying: each message
        # is stored once.
        world.server = start_server(tmp_path / "data", port)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout, proc.stderr:
        assert code == 0, proc.stderr.read()
    assert texts_in(port, world.room_id) == ["once", "twice"]


def test_send_lines_paced_by_the_rate_limit_are_all_stored_once(tmp_path: Path) -> None:
    limits = ("--send-rate", "4", "--send-burst", "2")
    server = CrabProcess.start(tmp_path / "data", *limits, fast_send=False)
    try:
        room_id, _ = asyncio.run(set_up(server.port))
        session = tmp_path / "session.json"
        options = ["--server", server.target, "--session-file", str(session)]
        login = crab("login", *options, "alice", "--password-stdin", input=PASSWORD + "\n")
        assert login.returncode == 0, login.stderr
        lines = [f"line {n}" for n in range(8)]
        done = crab("send", *options, "general", "--lines", input="\n".join(lines))
        assert done.returncode == 0, done.stderr
        assert texts_in(server.port, room_id) == lines

        hurried = crab(
            "send", *options, "general", "--lines", "--wait", "0", input="a\nb\nc\nd\ne\n"
        )
        assert hurried.returncode == 1
        assert hurried.stderr.startswith("crab: not sent:") and hurried.stderr.count("\n") == 1
        stored = texts_in(server.port, room_id)[len(lines) :]
        assert len(stored) < 5 and stored == ["a", "b", "c", "d", "e"][: len(stored)]
    finally:
        server.stop()


def test_the_session_is_crab_chats_own(world: World, tmp_path: Path) -> None:
    """Without --session-file: sessions.json in crab chat's config directory
    (CRAB_CONFIG_DIR, the same as `crab chat --config-dir`), read by
    crab/tui/saved.py as `crab chat` reads it."""
    from crab.tui.saved import SessionFile

    config = tmp_path / "chat-config"
    env = {"CRAB_CONFIG_DIR": str(config), "CRAB_SERVER": world.server.target}
    done = crab("login", "alice", "--password-stdin", input=PASSWORD + "\n", env=env)
    assert done.returncode == 0, done.stderr
    saved = SessionFile(config).load(world.server.target)
    assert saved is not None and saved.username == "alice"
    assert stat.S_IMODE((config / "sessions.json").stat().st_mode) == 0o600
    assert crab("send", "general", "via the chat session", env=env).returncode == 0
    assert texts_in(world.server.port, world.room_id) == ["via the chat session"]


def test_login_and_send_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key_file))
    tls = ("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    server = CrabProcess.start(tmp_path / "data", *tls)
    try:
        asyncio.run(set_up(server.port, tls_context(str(ca_file))))
        session = tmp_path / "session.json"
        options = ["--server", server.target, "--session-file", str(session)]
        untrusted = crab("login", *options, "--tls", "alice", "--password-stdin", input=PASSWORD)
        assert untrusted.returncode == 4 and untrusted.stderr.count("\n") == 1
        trusted = crab("login", *options, "--ca", str(ca_file), "alice", "--password-stdin",
                       input=PASSWORD)  # fmt: skip
        assert trusted.returncode == 0, trusted.stderr
        sent = crab("send", *options, "--ca", str(ca_file), "general", "over tls")
        assert sent.returncode == 0, sent.stderr
        plaintext = crab("send", *options, "general", "--wait", "0", "in the clear")
        assert plaintext.returncode == 4
    finally:
        server.stop()
