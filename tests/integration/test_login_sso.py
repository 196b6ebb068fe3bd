"""`crab login --sso` as a script runs it: the installed command against a
real `crab serve` process; what it prints, its exit code, the session saved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.process import CrabProcess, free_port
from tests.helpers.scripting import crab, start_server

pytestmark = pytest.mark.slow  # crab serve as a real process, crab as a command


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[CrabProcess]:
    server = start_server(tmp_path / "data", free_port())
    try:
        yield server
    finally:
        server.stop()


def test_a_server_without_an_identity_provider_says_so(
    plain_server: CrabProcess, tmp_path: Path
) -> None:
    session = tmp_path / "session.json"
    done = crab("login", "--sso", "--server", plain_server.target, "--session-file", str(session))
    assert done.returncode == 1, done.stderr
    assert (
        done.stderr
        == f"crab: {plain_server.target} has no identity provider: sign in with a password\n"
    )
    assert not session.exists()


def test_sso_takes_no_username_nor_password(tmp_path: Path) -> None:
    done = crab("login", "--sso", "alice", "--server", "127.0.0.1:1")
    assert done.returncode == 2 and "--sso" in done.stderr


def test_an_unreachable_server_is_exit_code_4(tmp_path: Path) -> None:
    done = crab("login", "--sso", "--server", f"127.0.0.1:{free_port()}")
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("crab: cannot reach the server")
