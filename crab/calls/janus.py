"""A client of Janus's HTTP API (https://janus.conf.meetecho.com/docs/rest):
one Janus session, the plugin handles attached to it, requests, and the
events Janus pushes through a long-poll GET.

Requests answered at once (`success`) return their plugin data; requests
Janus works on (`ack`, then an `event` with the same transaction) return
that event. Events that answer no request (a publisher arrived, a peer
connection went up or down) go to the handle's `on_event`. Everything read
from Janus is checked for shape and size before use: a Janus error, a
malformed answer, an unreachable server or a silence beyond the timeouts is
a `SfuError` saying which."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # one Janus answer or a batch of events; SDPs are a few KiB
MAX_SDP = 16_384  # the same cap crab's server puts on signalled SDP
MAX_ID = 2**53  # Janus ids are JSON numbers: integers beyond this lose precision
REQUEST_TIMEOUT = 10.0  # one answer, or one event that answers a request
CONNECT_TIMEOUT = 3.0
POLL_WAIT = 30.0  # Janus holds a long-poll this long when it has nothing to say
KEEPALIVE_EVERY = 20.0  # Janus drops a session silent for 60 s (session_timeout)
MAX_EVENTS = 10  # per long-poll answer

JsonObject = dict[str, Any]


class SfuError(Exception):
    """A group call through Janus cannot go on: Janus unreachable or silent,
    a request refused (with Janus's code and reason), or an answer that is
    not what the API documents. `code` is Janus's error code, if it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def _refusal(reason: object, code: object) -> SfuError:
    number = code if isinstance(code, int) and not isinstance(code, bool) else None
    return SfuError(f"Janus refused: {_short(reason)} (code {_short(code)})", number)


@dataclass(frozen=True, slots=True)
class Jsep:
    """A session description carried with a Janus message."""

    type: str  # "offer" | "answer"
    sdp: str

    def to_json(self) -> JsonObject:
        return {"type": self.type, "sdp": self.sdp}


def parse_jsep(value: object) -> Jsep:
    if not isinstance(value, dict):
        raise SfuError(f"Janus sent a jsep that is not an object: {_short(value)}")
    kind, sdp = value.get("type"), value.get("sdp")
    if kind not in ("offer", "answer"):
        raise SfuError(f"Janus sent a jsep of type {_short(kind)}")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise SfuError("Janus sent a jsep without an SDP")
    if len(sdp.encode()) > MAX_SDP:
        raise SfuError(f"Janus sent an SDP of {len(sdp.encode())} bytes (limit {MAX_SDP})")
    return Jsep(kind, sdp)


def janus_id(value: object, what: str) -> int:
    """A session, handle or participant id as Janus sends it."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_ID:
        raise SfuError(f"Janus sent {what} {_short(value)}, not a positive integer")
    return value


@dataclass(frozen=True, slots=True)
class PluginEvent:
    """What a plugin said: its data, and a jsep when media is negotiated."""

    data: JsonObject
    jsep: Jsep | None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _plugin_event(message: JsonObject) -> PluginEvent:
    plugindata = message.get("plugindata")
    if not isinstance(plugindata, dict) or not isinstance(plugindata.get("data"), dict):
        raise SfuError(f"Janus sent {message.get('janus')!r} without plugin data")
    data: JsonObject = plugindata["data"]
    if "error_code" in data or "error" in data:
        raise _refusal(data.get("error"), data.get("error_code"))
    jsep = parse_jsep(message["jsep"]) if message.get("jsep") is not None else None
    return PluginEvent(data, jsep)


def _janus_error(message: JsonObject) -> SfuError:
    error = message.get("error")
    if isinstance(error, dict):
        return _refusal(error.get("reason"), error.get("code"))
    return SfuError("Janus answered with an error and no reason")


EventHandler = Callable[[str, JsonObject], None]  # (janus event name, whole message)


class Handle:
    """One plugin handle: a publisher or a subscriber in a VideoRoom."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id
        self.on_event: EventHandler = lambda kind, message: None

    async def request(self, body: JsonObject) -> JsonObject:
        """A request the plugin answers at once (create, exists...)."""
        message = await self.session.post(f"/{self.id}", {"janus": "message", "body": body})
        if message.get("janus") != "success":
            raise SfuError(f"Janus answered {_short(message.get('janus'))} to {body['request']}")
        return _plugin_event(message).data

    async def send(self, body: JsonObject, jsep: Jsep | None = None) -> PluginEvent:
        """A request the plugin works on (join, publish, start...): Janus
        acknowledges it, then an event with the same transaction answers."""
        payload: JsonObject = {"janus": "message", "body": body}
        if jsep is not None:
            payload["jsep"] = jsep.to_json()
        return await self.session.post_and_wait(f"/{self.id}", payload)

    async def detach(self) -> None:
        await self.session.post(f"/{self.id}", {"janus": "detach"})


class JanusSession:
    """One session on one Janus server, polled for events while it lives.

    Use `await JanusSession.create(url)`, `attach`, then `destroy` (which is
    safe to call more than once and after failures)."""

    def __init__(
        self, url: str, client: httpx.AsyncClient, session_id: int, token: str = ""
    ) -> None:
        self.url = url.rstrip("/")
        self.id = session_id
        self._client = client
        self._auth: JsonObject = {"token": token} if token else {}
        self._transactions = (f"t{n}" for n in itertools.count(1))
        self._waiting: dict[str, asyncio.Future[JsonObject]] = {}
        self._handles: dict[int, Handle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: SfuError | None = None
        self.on_failure: Callable[[SfuError], None] = lambda error: None

    @classmethod
    async def create(
        cls, url: str, token: str = "", transport: httpx.AsyncBaseTransport | None = None
    ) -> JanusSession:
        """`token` goes with every request when Janus checks them
        (`token_auth`); `transport` replaces the network (tests give
        httpx.MockTransport)."""
        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT)
        client = httpx.AsyncClient(timeout=timeout, transport=transport)
        try:
            auth = {"token": token} if token else {}
            payload = {"janus": "create", "transaction": "t0", **auth}
            answer = await _post(client, url.rstrip("/"), payload)
            if answer.get("janus") == "error":
                raise _janus_error(answer)
            if answer.get("janus") != "success" or not isinstance(answer.get("data"), dict):
                raise SfuError(f"Janus answered {_short(answer.get('janus'))} to create")
            session_id = janus_id(answer["data"].get("id"), "a session id")
            session = cls(url, client, session_id, token)
        except BaseException:
            await client.aclose()
            raise
        session._tasks = [
            asyncio.create_task(session._poll(), name=f"janus-poll-{session.id}"),
            asyncio.create_task(session._keepalive(), name=f"janus-keepalive-{session.id}"),
        ]
        return session

    async def attach(self, plugin: str) -> Handle:
        answer = await self.post("", {"janus": "attach", "plugin": plugin})
        if answer.get("janus") != "success" or not isinstance(answer.get("data"), dict):
            raise SfuError(f"Janus answered {_short(answer.get('janus'))} to attach")
        handle = Handle(self, janus_id(answer["data"].get("id"), "a handle id"))
        self._handles[handle.id] = handle
        return handle

    def forget(self, handle: Handle) -> None:
        self._handles.pop(handle.id, None)

    async def post(self, path: str, payload: JsonObject) -> JsonObject:
        """One request to this session (or to a handle: path "/<handle>")."""
        if self._failure is not None:
            raise self._failure
        payload = {**payload, **self._auth, "transaction": next(self._transactions)}
        answer = await _post(self._client, f"{self.url}/{self.id}{path}", payload)
        if answer.get("janus") == "error":
            raise _janus_error(answer)
        return answer

    async def post_and_wait(self, path: str, payload: JsonObject) -> PluginEvent:
        if self._failure is not None:
            raise self._failure
        transaction = next(self._transactions)
        answered: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = answered
        try:
            url = f"{self.url}/{self.id}{path}"
            ack = await _post(
                self._client, url, {**payload, **self._auth, "transaction": transaction}
            )
            if ack.get("janus") == "error":
                raise _janus_error(ack)
            if ack.get("janus") == "success":  # some requests are answered at once after all
                return _plugin_event(ack)
            if ack.get("janus") != "ack":
                raise SfuError(f"Janus answered {_short(ack.get('janus'))} to a message")
            try:
                event = await asyncio.wait_for(answered, REQUEST_TIMEOUT)
            except TimeoutError:
                raise SfuError(
                    f"Janus did not answer {payload['body'].get('request')!r} "
                    f"within {REQUEST_TIMEOUT:.0f} s"
                ) from None
            return _plugin_event(event)
        finally:
            self._waiting.pop(transaction, None)
            if answered.done() and not answered.cancelled():
                answered.exception()  # failed by _fail() while nobody awaited it: seen

    async def destroy(self) -> None:
        """Ends the session on Janus (which hangs up and detaches its
        handles) and stops polling. Best effort, bounded, idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client.is_closed:
            return
        try:
            if self._failure is None:
                with contextlib.suppress(SfuError, TimeoutError):
                    payload = {"janus": "destroy", **self._auth, "transaction": "end"}
                    await asyncio.wait_for(
                        _post(self._client, f"{self.url}/{self.id}", payload), CONNECT_TIMEOUT
                    )
        finally:
            await self._client.aclose()

    def _fail(self, error: SfuError) -> None:
        if self._failure is None:
            self._failure = error
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(error)
            self.on_failure(error)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_EVERY)
            try:
                await self.post("", {"janus": "keepalive"})
            except SfuError as error:
                self._fail(error)
                return

    async def _poll(self) -> None:
        url = f"{self.url}/{self.id}"
        timeout = httpx.Timeout(POLL_WAIT + REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT)
        while True:
            try:
                params = {"maxev": str(MAX_EVENTS), **self._auth}
                events = await _get(self._client, url, params, timeout)
            except SfuError as error:
                self._fail(error)
                return
            for event in events:
                if event.get("janus") == "error":  # the session is gone (Janus restarted...)
                    self._fail(_janus_error(event))
                    return
                self._dispatch(event)

    def _dispatch(self, message: JsonObject) -> None:
        kind = message.get("janus")
        if kind == "keepalive":
            return
        transaction = message.get("transaction")
        if kind == "event" and isinstance(transaction, str) and transaction in self._waiting:
            waiting = self._waiting[transaction]
            if not waiting.done():
                waiting.set_result(message)
            return
        sender = message.get("sender")
        handle = self._handles.get(sender) if isinstance(sender, int) else None
        if handle is None:
            log.debug("Janus event %s for no handle of ours", _short(kind))
            return
        if not isinstance(kind, str):
            log.warning("Janus sent an event with no kind: %s", _short(message))
            return
        try:
            handle.on_event(kind, message)
        except SfuError as error:
            log.warning("ignoring a malformed Janus event: %s", error)


async def _read(response: httpx.Response) -> object:
    if int(response.headers.get("content-length", "0") or 0) > MAX_BODY:
        raise SfuError(f"Janus sent more than {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_BODY:
            raise SfuError(f"Janus sent more than {MAX_BODY} bytes")
    if response.status_code != 200:
        raise SfuError(f"Janus answered HTTP {response.status_code}")
    try:
        return json.loads(body)
    except ValueError:
        raise SfuError("Janus sent an answer that is not JSON") from None


async def _post(client: httpx.AsyncClient, url: str, payload: JsonObject) -> JsonObject:
    try:
        async with client.stream("POST", url, json=payload) as response:
            answer = await _read(response)
    except httpx.TimeoutException as error:
        raise SfuError(f"Janus at {url} did not answer in time ({error!r})") from error
    except httpx.HTTPError as error:
        raise SfuError(f"Janus at {url} is unreachable: {error!r}") from error
    if not isinstance(answer, dict):
        raise SfuError(f"Janus answered with {type(answer).__name__}, not an object")
    return answer


async def _get(
    client: httpx.AsyncClient, url: str, params: dict[str, str], timeout: httpx.Timeout
) -> list[JsonObject]:
    try:
        async with client.stream("GET", url, params=params, timeout=timeout) as response:
            answer = await _read(response)
    except httpx.HTTPError as error:
        raise SfuError(f"Janus at {url} stopped answering: {error!r}") from error
    batch = answer if isinstance(answer, list) else [answer]
    events = [event for event in batch if isinstance(event, dict)]
    if len(events) != len(batch) or len(events) > MAX_EVENTS:
        raise SfuError("Janus sent events that are not a short list of objects")
    return events
