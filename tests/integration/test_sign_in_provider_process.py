"""Single sign-on as an admin sets it up: `crab serve --oidc-*` (and its
CRAB_OIDC_* variables), `crab user link`, and a whole device-flow sign-in
(RFC 8628) by a real client through a real `crab serve` process and the
test provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.client.device_flow import DeviceFlow, Provider
from crab.proto.crab import v1 as pb
from tests.helpers.oidc_provider import OidcProvider
from tests.helpers.process import CrabProcess, run_crab
from tests.helpers.server import PASSWORD

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--oidc-issuer", "http://idp.example.com", "--oidc-client-id", "c"], "https://"),
        (["--oidc-issuer", "https://idp.example.com"], "--oidc-client-id"),
        (["--no-passwords"], "nobody could sign in"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start(args: list[str], complaint: str) -> None:
    done = run_crab("serve", "--port", "0", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_linked_account_signs_in_through_the_device_flow(
    tmp_path: Path, provider: OidcProvider
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    added = run_crab("user", "add", "alice", "--password-stdin", *data, input=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr

    link = ("user", "link", "alice", "--subject", "sub-alice", *data)
    linked = run_crab(*link, env={"CRAB_OIDC_ISSUER": provider.issuer})
    assert linked.returncode == 0, linked.stderr
    assert "now signs in as alice" in linked.stdout
    again = run_crab(*link, "--issuer", provider.issuer)
    assert again.returncode == 1 and "already linked" in again.stderr, again.stderr
    nobody = run_crab(
        "user", "link", "nobody", "--subject", "s", "--issuer", provider.issuer, *data
    )
    assert nobody.returncode == 1 and "no account named 'nobody'" in nobody.stderr

    env = {"CRAB_OIDC_ISSUER": provider.issuer, "CRAB_OIDC_CLIENT_ID": provider.client_id}
    extra = ("--no-signup", "--no-passwords", "--oidc-name", "Test")
    server = CrabProcess.start(tmp_path / "data", *extra, env=env)
    client = CrabClient("127.0.0.1", server.port)
    try:
        options = await client.sign_in_options()
        assert not options.passwords and options.provider is not None
        with pytest.raises(GRPCError) as refused:
            await client.sign_in("alice", PASSWORD)
        assert refused.value.status is Status.FAILED_PRECONDITION

        offered = options.provider
        flow = DeviceFlow(Provider(offered.issuer, offered.client_id, tuple(offered.scopes)))
        try:
            code = await flow.start()
            provider.script("authorization_pending")
            provider.approve(code.user_code, "sub-alice")
            id_token = await flow.id_token(code)
        finally:
            await flow.aclose()
        me = await client.sign_in_with_provider(id_token)
        assert (me.id, me.username) == (1, "alice")
        who = await client.accounts.who_am_i(pb.Empty(), metadata=client.metadata)
        assert who.username == "alice"

        # An identity no admin linked: sign-up is closed, nothing is made.
        stranger = CrabClient("127.0.0.1", server.port)
        try:
            with pytest.raises(GRPCError) as closed:
                await stranger.sign_in_with_provider(provider.mint("sub-stranger"))
            assert closed.value.status is Status.PERMISSION_DENIED
        finally:
            stranger.close()
    finally:
        client.close()
        server.stop()
    listed = run_crab("user", "list", *data)
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == ["alice"]
