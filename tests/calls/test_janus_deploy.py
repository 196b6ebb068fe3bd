"""Janus as deploy/janus's image runs it (its configuration files and
entrypoint.sh), for real in a private namespace: it starts, loads the
VideoRoom plugin and the HTTP API on the port crab's deploy files name, and
lets in only a token signed with the secret given in the environment."""

from __future__ import annotations

import time

import pytest

from crab.core.services.turn import janus_token
from tests.helpers.janus import deployed_janus

pytest.importorskip("aiortc")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_the_deployed_janus_checks_tokens_with_the_secret_from_the_environment() -> None:
    secret, now = "deployed-sfu-secret", int(time.time())
    with deployed_janus(secret) as janus:
        result = janus.run_python(
            "tests.calls.sfu_clients",
            "tokens",
            janus.url,
            janus_token(secret, now + 60),
            janus_token("another secret", now + 60),
            "",
        )
    # The good token got in (the scenario raises otherwise); the others did not.
    errors = result["errors"]
    assert isinstance(errors, list) and len(errors) == 2
    for error in errors:
        assert isinstance(error, str) and "Janus refused" in error, errors
