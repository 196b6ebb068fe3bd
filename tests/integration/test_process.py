"""crab as a real process: `crab serve` killed with SIGKILL mid-traffic and
restarted, stopped with SIGTERM, spoken to by grpcio, run with closed
sign-up after `crab user add`, and started on a fresh data dir."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.exceptions import StreamTerminatedError

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.chats import all_messages
from tests.helpers.process import CrabProcess, Servers, free_port, run_crab
from tests.helpers.server import PASSWORD

pytestmark = pytest.mark.slow  # crab serve as a real process

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "crab" / "proto"
GRPCIO_CLIENT = ROOT / "tests" / "helpers" / "grpcio_client.py"

# What a client sees when the server process vanishes under its stream.
CONNECTION_LOST = (GRPCError, StreamTerminatedError, ConnectionError, OSError)


# ---- 1. kill -9 -------------------------------------------------------------


@dataclass
class Writer:
    """One client sending continuously on its session stream with its own ids,
    at most `window` unacknowledged at a time, recording every ack."""

    name: str
    client: CrabClient
    chat_id: int
    on_ack: Callable[[], None]
    window: int = 32
    sent: list[str] = field(default_factory=list)  # handed to the stream, in order
    acked: dict[str, int] = field(default_factory=dict)  # client id -> message id
    errors: list[pb.SendError] = field(default_factory=list)
    ended_by: BaseException | None = None

    @staticmethod
    def text(cid: str) -> str:
        return f"text of {cid}"

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.window)
        try:
            async with self.client.session() as live:
                receiver = asyncio.create_task(self._receive(live, slots))
                sender = asyncio.create_task(self._send(live, slots))
                await asyncio.wait({receiver, sender}, return_when="FIRST_COMPLETED")
                for task in (receiver, sender):
                    task.cancel()
                outcomes = await asyncio.gather(receiver, sender, return_exceptions=True)
                for outcome in outcomes:  # how the stream ended
                    if not isinstance(outcome, asyncio.CancelledError | None):
                        raise outcome
        except CONNECTION_LOST as error:
            self.ended_by = error

    async def _send(self, live: SessionStream, slots: asyncio.Semaphore) -> None:
        n = 0
        while True:
            await slots.acquire()
            n += 1
            cid = f"{self.name}-{n:05d}"
            self.sent.append(cid)  # from here it may have reached the server
            await live.send(self.chat_id, self.text(cid), client_message_id=cid)

    async def _receive(self, live: SessionStream, slots: asyncio.Semaphore) -> None:
        while (frame := await live.recv()) is not None:
            if frame.ack is not None:
                assert frame.ack.client_message_id not in self.acked, "acked twice"
                self.acked[frame.ack.client_message_id] = frame.ack.message.id
                self.on_ack()
                slots.release()
            elif frame.send_error is not None:
                self.errors.append(frame.send_error)
                slots.release()
        raise ConnectionError("session stream ended without an error")


async def make_room_of_three(server: CrabProcess) -> tuple[list[CrabClient], int]:
    clients = [CrabClient("127.0.0.1", server.port) for _ in range(3)]
    for i, client in enumerate(clients):
        await client.sign_up(f"writer{i}", PASSWORD)
    owner = clients[0]
    room = await owner.chats.create_room(
        pb.CreateRoomRequest(name="crash"), metadata=owner.metadata
    )
    for other in clients[1:]:
        invite = await owner.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=other.user.id), metadata=owner.metadata
        )
        await other.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=other.metadata
        )
    return clients, room.id


async def resend(client: CrabClient, chat_id: int, cids: list[str]) -> dict[str, int]:
    """Sends each again with its own client id; the acks, as id -> message id."""
    acked: dict[str, int] = {}
    async with client.session() as live:
        for cid in cids:
            await live.send(chat_id, Writer.text(cid), client_message_id=cid)

        async def answers() -> None:
            while len(acked) < len(cids):
                frame = await live.recv()
                assert frame is not None, "stream ended before every re-send was answered"
                assert frame.send_error is None, frame.send_error
                if frame.ack is not None:
                    acked[frame.ack.client_message_id] = frame.ack.message.id

        await asyncio.wait_for(answers(), 30)
    return acked


async def test_kill_9_mid_traffic_loses_no_acknowledged_message(
    tmp_path: Path, servers: Servers
) -> None:
    data = tmp_path / "data"
    server = await servers.start(data)
    clients, chat_id = await make_room_of_three(server)

    enough = asyncio.Event()

    def on_ack() -> None:  # 100 acks, and every writer has had some
        if sum(len(w.acked) for w in writers) >= 100 and all(w.acked for w in writers):
            enough.set()

    writers = [Writer(f"w{i}", client, chat_id, on_ack) for i, client in enumerate(clients)]
    runs = [asyncio.create_task(w.run()) for w in writers]
    await asyncio.wait_for(enough.wait(), 30)

    in_flight_at_kill = sum(len(w.sent) - len(w.acked) for w in writers)
    server.kill()
    assert await asyncio.to_thread(server.wait) == -9
    # Every stream ends (with an error) once the server is gone.
    await asyncio.wait_for(asyncio.gather(*runs), 15)
    for client in clients:
        client.close()
    for w in writers:
        assert w.ended_by is not None, f"{w.name}'s stream did not end with an error"
        assert not w.errors, w.errors
    assert in_flight_at_kill > 0, "nothing was in flight when the server was killed"

    sent = {cid: w for w in writers for cid in w.sent}
    acked = {cid: mid for w in writers for cid, mid in w.acked.items()}
    assert len(sent) == sum(len(w.sent) for w in writers)  # ids are unique per writer

    server = await servers.start(data)
    clients = [CrabClient("127.0.0.1", server.port) for _ in range(3)]
    for i, client in enumerate(clients):
        await client.sign_in(f"writer{i}", PASSWORD)
    stored = await all_messages(clients[0], chat_id)

    counts = Counter(m.client_message_id for m in stored)
    duplicates = {cid: n for cid, n in counts.items() if n > 1}
    by_cid = {m.client_message_id: m for m in stored}
    unacked = [cid for cid in sent if cid not in acked]
    stored_unacked = [cid for cid in unacked if cid in by_cid]
    print(
        f"\nkill -9: sent {len(sent)}, acked {len(acked)} "
        f"(in flight at the kill: {in_flight_at_kill}), stored {len(stored)} "
        f"(of the {len(unacked)} unacked: {len(stored_unacked)} stored, "
        f"{len(unacked) - len(stored_unacked)} lost before commit), "
        f"duplicates {sum(n - 1 for n in duplicates.values())}"
    )
    assert not duplicates, f"stored more than once: {duplicates}"
    assert [m.id for m in stored] == list(range(1, len(stored) + 1)), "ids are not 1..N"
    for cid, message_id in acked.items():
        assert cid in by_cid, f"acknowledged {cid} was lost"
        assert by_cid[cid].id == message_id, f"{cid} stored as {by_cid[cid].id}, acked {message_id}"
    for m in stored:
        writer = sent.get(m.client_message_id)
        assert writer is not None, f"stored a message nobody sent: {m.client_message_id}"
        assert m.text == Writer.text(m.client_message_id)
        assert m.sender.username == f"writer{writers.index(writer)}"

    # Re-send every unacknowledged one (and a few acknowledged ones) with its
    # own id: each is stored once; those already stored keep their ids.
    before_resend = len(stored)
    resent: dict[str, int] = {}
    for i, w in enumerate(writers):
        again = [cid for cid in w.sent if cid not in acked] + list(w.acked)[:5]
        resent.update(await resend(clients[i], chat_id, again))
    for cid, message_id in resent.items():
        if cid in by_cid:
            assert message_id == by_cid[cid].id, f"re-sent {cid} got a new id"
        else:
            assert message_id > before_resend
    final = await all_messages(clients[0], chat_id)
    for client in clients:
        client.close()
    final_counts = Counter(m.client_message_id for m in final)
    print(
        f"after re-sending {len(resent)} ({len(unacked)} unacked): stored {len(final)}, "
        f"duplicates {sum(n - 1 for n in final_counts.values())}"
    )
    assert set(final_counts) == set(sent), "a sent message is missing after the re-send"
    assert all(n == 1 for n in final_counts.values()), "a re-send stored a second copy"
    assert [m.id for m in final] == list(range(1, len(sent) + 1))
    assert final[:before_resend] == stored, "the re-send changed what was already stored"


# ---- 2. SIGTERM ---------------------------------------------------------------


async def test_sigterm_ends_streams_with_unavailable_and_exits_0(
    tmp_path: Path, servers: Servers
) -> None:
    server = await servers.start(tmp_path / "data")
    client = CrabClient("127.0.0.1", server.port)
    try:
        await client.sign_up("stayer", PASSWORD)
        # The status arrives in the trailers: when the stream is left, or asked.
        with pytest.raises(GRPCError) as ended:
            async with client.session() as live:
                server.terminate()
                stopping = time.monotonic()
                frame = await asyncio.wait_for(live.recv(), 10)
                assert frame is None, f"the stream went on after SIGTERM: {frame}"
    finally:
        client.close()
    assert ended.value.status == Status.UNAVAILABLE, ended.value
    assert "reconnect" in (ended.value.message or "")

    assert await asyncio.to_thread(server.wait, 10) == 0
    assert time.monotonic() - stopping < 5
    log = server.log
    assert "shutting down" in log
    assert log.splitlines()[-1].endswith("crab: stopped"), log
    assert "Traceback" not in log and " ERROR " not in log, log


# ---- 3. grpcio ------------------------------------------------------------------


def test_grpcio_client_against_real_server(tmp_path: Path, servers: Servers) -> None:
    generated = tmp_path / "grpcio"
    generated.mkdir()
    protoc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",  # adds its bundled google/protobuf/*.proto to the path
            f"-I{PROTO_DIR}",
            f"--python_out={generated}",
            f"--grpc_python_out={generated}",
            "crab.proto",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert protoc.returncode == 0, protoc.stderr
    assert {p.name for p in generated.iterdir()} >= {"crab_pb2.py", "crab_pb2_grpc.py"}

    server = CrabProcess.start(tmp_path / "data")
    servers.append(server)
    talk = subprocess.run(
        [sys.executable, str(GRPCIO_CLIENT), str(generated), server.target],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert talk.returncode == 0, f"{talk.stderr}\n--- server log:\n{server.log}"
    seen = json.loads(talk.stdout.splitlines()[-1])

    assert seen["health"] == "SERVING"
    services = {f"crab.v1.{s}" for s in ("Accounts", "Users", "Chats", "Invites", "Session")}
    assert set(seen["services"]) >= services | {"grpc.health.v1.Health"}, seen["services"]
    assert "crab.proto" in seen["reflected_files"], seen["reflected_files"]
    assert seen["reflected_session_methods"] == ["Connect"]

    assert seen["whoami"] == seen["signed_up"]
    assert seen["room"]["name"] == "interop" and seen["room"]["kind"] == "CHAT_KIND_ROOM"
    assert seen["first_frame"] == "ready" and seen["ready_user"] == seen["signed_up"]
    ack = seen["ack"]
    assert ack["client_message_id"] == ack["sent_client_message_id"]
    assert ack["message_id"] == 1 and ack["text"] == "hello from grpcio"
    assert ack["sender"] == seen["signed_up"]
    assert seen["frames_until_ack_and_after"].count("ack") == 1
    assert seen["session_status"] == "OK"
    assert seen["stored"] == [[1, ack["client_message_id"], "hello from grpcio"]]


# ---- 4. crab user add / --no-signup ------------------------------------------------


async def test_admin_added_users_on_a_closed_server(tmp_path: Path, servers: Servers) -> None:
    data = tmp_path / "data"
    dir_args = ("--data-dir", str(data))

    added = run_crab("user", "add", "alice", "--password-stdin", *dir_args, input=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "created alice (id 1)"
    added = run_crab(
        "user", "add", "bob", "--display-name", "Bob B", "--password-stdin", *dir_args,
        input="another long password\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    listed = run_crab("user", "list", *dir_args)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows == [["1", "alice", "alice", "active"], ["2", "bob", "Bob B", "active"]]

    for name in ("alice", "ALICE"):
        again = run_crab("user", "add", name, "--password-stdin", *dir_args, input="x" * 12 + "\n")
        assert again.returncode != 0
        assert "username 'alice' is taken" in again.stderr, again.stderr
        assert "Traceback" not in again.stderr, again.stderr
    assert run_crab("user", "list", *dir_args).stdout == listed.stdout

    server = await servers.start(data, "--no-signup")
    client = CrabClient("127.0.0.1", server.port)
    try:
        with pytest.raises(GRPCError) as refused:
            await client.sign_up("mallory", PASSWORD)
        assert refused.value.status == Status.PERMISSION_DENIED
        with pytest.raises(GRPCError) as wrong:
            await client.sign_in("alice", "not the password")
        assert wrong.value.status == Status.UNAUTHENTICATED

        me = await client.sign_in("Alice", PASSWORD)
        assert (me.id, me.username) == (1, "alice")
        who = await client.accounts.who_am_i(pb.Empty(), metadata=client.metadata)
        assert who.username == "alice"
        async with client.session() as live:
            assert live.ready is not None and live.ready.user.username == "alice"
    finally:
        client.close()
    listed = run_crab("user", "list", *dir_args)
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == ["alice", "bob"]


# ---- 5. startup -------------------------------------------------------------------


def assert_fresh_data_dir(data: Path) -> None:
    assert (data / "crab.db").is_file()
    # Messages and password hashes: the folder is the owner's alone.
    assert stat.S_IMODE(data.stat().st_mode) == 0o700, oct(data.stat().st_mode)
    secret = data / "jwt-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600, oct(secret.stat().st_mode)
    assert len(secret.read_text().strip()) >= 32


def stop_and_check_log(server: CrabProcess) -> str:
    server.terminate()
    assert server.wait(10) == 0, server.log
    log = server.log
    assert log.count("crab listening on") == 1, log
    assert "stopped" in log
    return log


def test_startup_on_a_fresh_data_dir(tmp_path: Path, servers: Servers) -> None:
    data = tmp_path / "new" / "data"  # not there yet
    server = CrabProcess.start(data)
    servers.append(server)
    assert server.port > 0 and server.host == "127.0.0.1"
    assert_fresh_data_dir(data)
    log = stop_and_check_log(server)
    assert f"data in {data} (database sqlite+aiosqlite:///{data / 'crab.db'}" in log

    # Started again on it: the same secret, no new listening line but its own.
    secret = (data / "jwt-secret").read_text()
    server = CrabProcess.start(data)
    servers.append(server)
    stop_and_check_log(server)
    assert (data / "jwt-secret").read_text() == secret


def test_environment_chooses_data_dir_and_port(tmp_path: Path, servers: Servers) -> None:
    # CRAB_DATA_DIR and CRAB_PORT, no flags.
    data = tmp_path / "from-env"
    port = free_port()
    env = {"CRAB_DATA_DIR": str(data), "CRAB_PORT": str(port)}
    server = CrabProcess.start(None, env=env, port=None)
    servers.append(server)
    assert server.port == port
    assert_fresh_data_dir(data)
    assert f"data in {data} " in stop_and_check_log(server)

    # A flag beats the environment.
    flagged = tmp_path / "from-flag"
    server = CrabProcess.start(flagged, env={"CRAB_DATA_DIR": str(data)})
    servers.append(server)
    assert_fresh_data_dir(flagged)
    assert f"data in {flagged} " in stop_and_check_log(server)

    # Neither: the platform's user data dir (here under XDG_DATA_HOME).
    xdg = tmp_path / "xdg"
    server = CrabProcess.start(None, env={"XDG_DATA_HOME": str(xdg)})
    servers.append(server)
    assert_fresh_data_dir(xdg / "crab")
    assert f"data in {xdg / 'crab'} " in stop_and_check_log(server)
