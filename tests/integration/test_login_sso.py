"""`crab login --sso` as a script runs it: the installed command against a
real `crab serve` process; what it prints, its exit code, the session saved."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.oidc_provider import OidcProvider
from tests.helpers.process import CrabProcess, crab_env, free_port
from tests.helpers.scripting import CRAB, crab, start_server

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


@pytest.fixture
def sso_server(tmp_path: Path, provider: OidcProvider) -> Iterator[CrabProcess]:
    oidc = ("--oidc-issuer", provider.issuer, "--oidc-client-id", provider.client_id)
    server = CrabProcess.start(tmp_path / "sso-data", *oidc, "--oidc-name", "Test")
    try:
        yield server
    finally:
        server.stop()


class Login:
    """A running `crab login --sso`: the test plays the person at the provider."""

    def __init__(self, server: CrabProcess, session: Path) -> None:
        self.proc = subprocess.Popen(
            [
                str(CRAB),
                "login",
                "--sso",
                "--server",
                server.target,
                "--session-file",
                str(session),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=crab_env(),
        )

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, out, err


def test_login_sso_approved_saves_a_session_the_other_commands_use(
    sso_server: CrabProcess, provider: OidcProvider, tmp_path: Path
) -> None:
    session = tmp_path / "session.json"
    login = Login(sso_server, session)
    user_code = provider.wait_for_code(30)
    provider.approve(user_code, "sub-carol")
    code, out, err = login.finish()
    assert code == 0, err
    assert out == ""  # stdout stays for what scripts read
    assert f"enter the code {user_code}" in err and provider.issuer in err
    assert "▀" not in err and "█" not in err  # no QR code: stderr is no terminal
    assert err.endswith(f"signed in to {sso_server.target} as carol\n")
    saved = json.loads(session.read_text())[sso_server.target]
    assert saved["username"] == "carol" and saved["refresh_token"]
    # The saved session is crab's own: another command signs in with it.
    options = ("--server", sso_server.target, "--session-file", str(session))
    listed = crab("chats", *options, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []  # a new account: no chats yet


def test_login_sso_denied_is_a_clear_failure_and_saves_nothing(
    sso_server: CrabProcess, provider: OidcProvider, tmp_path: Path
) -> None:
    session = tmp_path / "session.json"
    login = Login(sso_server, session)
    provider.deny(provider.wait_for_code(30))
    code, _, err = login.finish()
    assert code == 1, err
    assert err.splitlines()[-1] == "crab: The sign-in was denied at the provider."
    assert "Traceback" not in err and not session.exists()


def test_login_sso_expired_is_a_clear_failure(
    sso_server: CrabProcess, provider: OidcProvider, tmp_path: Path
) -> None:
    login = Login(sso_server, tmp_path / "session.json")
    provider.expire(provider.wait_for_code(30))
    code, _, err = login.finish()
    assert code == 1, err
    assert err.splitlines()[-1].startswith("crab: ") and "expired" in err.splitlines()[-1].lower()


def test_login_sso_with_the_provider_down_is_exit_code_4(
    sso_server: CrabProcess, provider: OidcProvider, tmp_path: Path
) -> None:
    provider.down = True
    code, _, err = Login(sso_server, tmp_path / "session.json").finish()
    assert code == 4, err
    assert err.count("\n") == 1 and err.startswith("crab: ") and "Traceback" not in err
