"""The sign-in screen while the device flow runs: the provider's page, the
code to enter there (big, spaced), the same page as a QR code when the
terminal has room for it, and how to cancel."""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from crab.tui.keys import Command, keys_for, keys_label
from crab.tui.state import SignInForm
from crab.tui.views import qr

TEXT_ROWS = 9  # the rows around the QR code: title, page, code, waiting, keys


def spaced(code: str) -> str:
    """ABCD-EFGH as A B C D - E F G H: read aloud and typed without a slip."""
    return " ".join(code)


def fits(rows: tuple[str, ...], columns: int, height: int) -> bool:
    """Whether the QR code fits the terminal beside the text (else it is left out)."""
    return bool(rows) and len(rows[0]) + 4 <= columns and len(rows) + TEXT_ROWS <= height


def code_view(form: SignInForm, columns: int, height: int) -> StyleAndTextTuples:
    provider = form.provider.name if form.provider else "the identity provider"
    cancel = keys_label(keys_for(Command.BACK)[:1] or ("escape",))
    code = form.code
    if code is None:
        return [
            ("class:hint", f"asking {provider} for a code...\n\n"),
            ("class:hint", f"{cancel}: cancel"),
        ]
    page = code.verification_uri or code.verification_uri_complete
    out: StyleAndTextTuples = [
        ("", "Open "),
        ("class:link", page),
        ("", "\nand enter the code\n\n   "),
        ("class:user-code", f" {spaced(code.user_code)} "),
        ("", "\n\n"),
    ]
    drawn = qr.rows(code.verification_uri_complete or page)
    if fits(drawn, columns, height):
        out += [("", "or scan it with a phone:\n")]
        out += qr.qr_code(code.verification_uri_complete or page)
        out += [("", "\n")]
    out += [
        ("class:hint", f"waiting for you at {provider}...\n"),
        ("class:hint", f"{cancel}: cancel"),
    ]
    return out
