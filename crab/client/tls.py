"""The client's TLS context (kept apart from grpclib so `crab chat` can
build it before the heavy imports)."""

from __future__ import annotations

import ssl


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Verifies the server against the system CAs, or the given CA file."""
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    return context
