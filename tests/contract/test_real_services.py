"""A missing service skips its tests on a developer's machine, and fails
them in CI: CI never passes by silently skipping."""

from __future__ import annotations

import pytest

from tests.helpers.services import missing_service


def test_missing_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        missing_service("rabbitmq-server is not installed")


def test_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        missing_service("rabbitmq-server is not installed")
