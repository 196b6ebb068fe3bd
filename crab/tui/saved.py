"""What the client keeps in its config directory (files of mode 0600): the
signed-in session per server, so the next start opens straight into the
chats, and the settings a person chose (/bell), for every server."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs


def default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir("crab", appauthor=False))


@dataclass(frozen=True, slots=True)
class SavedSession:
    server: str
    username: str
    access_token: str
    refresh_token: str


class SessionFile:
    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / "sessions.json"

    def _all(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def load(self, server: str) -> SavedSession | None:
        found = self._all().get(server)
        try:
            return SavedSession(**found) if found else None
        except TypeError:
            return None

    def save(self, session: SavedSession) -> None:
        data = self._all()
        data[session.server] = asdict(session)
        self._write(data)

    def forget(self, server: str) -> None:
        data = self._all()
        if data.pop(server, None) is not None:
            self._write(data)

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        _write(self.path, data)


MAX_MUTED = 1000  # muted chats kept per server


class SettingsFile:
    """settings.json: {"bell": "all" | "mentions" | "off", "order": "fixed" |
    "activity", "muted": {server: [chat ids]}}. A setting
    missing or unreadable is None (the client's default applies)."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / "settings.json"

    def _all(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def bell(self) -> str | None:
        found = self._all().get("bell")
        return found if isinstance(found, str) else None

    def save_bell(self, bell: str) -> None:
        _write(self.path, {**self._all(), "bell": bell})

    def order(self) -> str | None:
        found = self._all().get("order")
        return found if isinstance(found, str) else None

    def save_order(self, order: str) -> None:
        _write(self.path, {**self._all(), "order": order})

    def muted(self, server: str) -> frozenset[int]:
        """The chats muted (/mute) on this server: {"muted": {server: [ids]}}."""
        found = self._all().get("muted")
        ids = found.get(server) if isinstance(found, dict) else None
        if not isinstance(ids, list):
            return frozenset()
        return frozenset(i for i in ids[:MAX_MUTED] if isinstance(i, int))

    def save_muted(self, server: str, chat_ids: tuple[int, ...]) -> None:
        data = self._all()
        found = data.get("muted")
        muted = dict(found) if isinstance(found, dict) else {}
        muted[server] = sorted(chat_ids)[:MAX_MUTED]
        _write(self.path, {**data, "muted": muted})


MAX_HISTORY_LINES = 100  # sent lines kept per chat
MAX_HISTORY_CHATS = 200  # chats kept per server, the least recently used go
MAX_HISTORY_CHARS = 1000  # a longer line is kept for this run only


class InputHistoryFile:
    """history.json: what I typed on the message line, per server and chat
    ({server: {chat id: [oldest..newest]}}), for Up and Shift+Up after a
    restart. Never a /password answer (the app does not pass them)."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / "history.json"

    def _all(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError, OSError):
            return {}
        return data if isinstance(data, dict) else {}

    def load(self, server: str) -> dict[int, list[str]]:
        found = self._all().get(server)
        if not isinstance(found, dict):
            return {}
        out: dict[int, list[str]] = {}
        for key, lines in found.items():
            if str(key).isdigit() and isinstance(lines, list):
                kept = [x for x in lines if isinstance(x, str)][-MAX_HISTORY_LINES:]
                out[int(key)] = kept
        return out

    def add(self, server: str, chat_id: int, line: str) -> None:
        if len(line) > MAX_HISTORY_CHARS:
            return
        data = self._all()
        found = data.get(server)
        chats = {str(k): v for k, v in found.items()} if isinstance(found, dict) else {}
        lines = chats.pop(str(chat_id), [])
        lines = [x for x in lines if isinstance(x, str)] if isinstance(lines, list) else []
        chats[str(chat_id)] = [*lines, line][-MAX_HISTORY_LINES:]  # now the most recent
        data[server] = dict(list(chats.items())[-MAX_HISTORY_CHATS:])
        _write(self.path, data)


def _write(path: Path, data: object) -> None:
    """Whole or not at all (a rename), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
