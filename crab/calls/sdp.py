"""Checks on an SDP that came over the network, before aiortc sees it: a
size cap, a parse, and the parts a call cannot do without. Anything wrong
is a ValueError that says what."""

from __future__ import annotations

from aiortc.sdp import SessionDescription

MAX_SDP = 16_384  # bytes, as the server caps it
MAX_MEDIA = 8  # m= sections: a call has two


def check_sdp(sdp: object, what: str) -> SessionDescription:
    if not isinstance(sdp, str):
        raise ValueError(f"{what}: SDP must be text, not {type(sdp).__name__}")
    size = len(sdp.encode("utf-8", "replace"))
    if size > MAX_SDP:
        raise ValueError(f"{what}: SDP of {size} bytes is over the {MAX_SDP}-byte limit")
    if not sdp.startswith("v=0"):
        raise ValueError(f"{what}: not an SDP (it must start with v=0)")
    if any(ord(char) < 32 and char not in "\r\n\t" for char in sdp):
        raise ValueError(f"{what}: SDP holds control characters")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as error:  # aiortc's parser raises whatever the text trips
        raise ValueError(f"{what}: malformed SDP ({type(error).__name__}: {error})") from None
    if not parsed.media:
        raise ValueError(f"{what}: SDP has no media section")
    if len(parsed.media) > MAX_MEDIA:
        raise ValueError(
            f"{what}: SDP has {len(parsed.media)} media sections (at most {MAX_MEDIA})"
        )
    for media in parsed.media:
        if media.kind not in ("audio", "video"):
            raise ValueError(f"{what}: unexpected media {media.kind!r} in SDP")
        ice = media.ice
        if ice is None or not ice.usernameFragment or not ice.password:
            raise ValueError(f"{what}: SDP has no ICE credentials for {media.kind}")
        if not media.dtls or not media.dtls.fingerprints:
            raise ValueError(f"{what}: SDP has no DTLS fingerprint for {media.kind}")
    return parsed
