"""The `crab` command: serve, worker, chat, user admin, bench."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from crab import log_setup, start_up
from crab.admin_cli import room, user
from crab.backup_cli import COMMANDS as BACKUP_COMMANDS
from crab.cli_support import broker_option, make_settings, run, storage_options
from crab.config import (
    CallSettings,
    Limits,
    OidcSettings,
    Rate,
    Settings,
    check_url,
)
from crab.scripting.options import server_options

if TYPE_CHECKING:
    from crab.core.app import Crab

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("crab")


# The limits `crab serve` takes, one option each, made from crab/config.py's
# table: --NAME-WITH-DASHES and CRAB_NAME, defaults and help from the field.
LIMIT_FIELDS = [f for f in dataclasses.fields(Limits) if "help" in f.metadata]
LIMIT_NAMES = [f.name for f in LIMIT_FIELDS]


def limit_options(func: F) -> F:
    for f in reversed(LIMIT_FIELDS):
        func = click.option(
            "--" + f.name.replace("_", "-"),
            default=f.default,
            type=type(f.default),
            show_default=True,
            envvar="CRAB_" + f.name.upper(),
            show_envvar=True,
            help=f.metadata["help"],
        )(func)
    return func


def log_options(func: F) -> F:
    """--log-level and --log-format, applied before anything is logged."""

    def apply(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        ctx.meta[param.name or ""] = value
        if "log_level" in ctx.meta and "log_format" in ctx.meta:
            log_setup.configure(ctx.meta["log_level"], ctx.meta["log_format"])
        return value

    func = click.option(
        "--log-format",
        type=click.Choice(log_setup.FORMATS),
        default="text",
        show_default=True,
        envvar="CRAB_LOG_FORMAT",
        show_envvar=True,
        expose_value=False,
        callback=apply,
        help="json: one object a line (time, level, logger, message) for log shippers.",
    )(func)
    func = click.option(
        "--log-level",
        type=click.Choice(log_setup.LEVELS, case_sensitive=False),
        default="info",
        show_default=True,
        envvar="CRAB_LOG_LEVEL",
        show_envvar=True,
        expose_value=False,
        callback=apply,
        help="debug adds grpclib's line per dropped or timed-out call.",
    )(func)
    return func


def _rate(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A rate limit written as COUNT/UNIT: 20/min, 30/h (units s, min, h, day)."""
    if value is None or isinstance(value, Rate):
        return value
    try:
        return Rate.parse(str(value))
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


# (option, Limits field, help): each a CRAB_* variable too; README lists them.
ACCOUNT_LIMITS: tuple[tuple[str, str, str], ...] = (
    ("--signup-limit", "signup_per_address", "Sign-ups per source address."),
    ("--room-limit", "rooms_per_user", "Rooms a user may create."),
    ("--room-limit-per-address", "rooms_per_address", "Rooms created from one address."),
    ("--invite-limit", "invites_per_user", "Invites a user may send."),
    ("--invite-limit-per-address", "invites_per_address", "Invites sent from one address."),
    ("--rename-limit", "renames_per_user", "Room renames by one owner."),
    ("--topic-limit", "topics_per_user", "Topic changes by one room owner."),
    ("--remove-member-limit", "removals_per_user", "Members one room owner may remove."),
    ("--display-name-limit", "display_names_per_user", "Display name changes per user."),
    ("--password-change-limit", "password_changes_per_user", "Password changes per user."),
    ("--search-limit", "searches_per_user", "Message searches a user may run."),
    ("--change-limit", "changes_per_user", "Edits, deletes and reactions by one user."),
    ("--mark-read-limit", "mark_reads_per_user", "Read positions (MarkRead) told by one user."),
    ("--call-limit", "calls_per_user", "Call actions (start, answer, hang up) by one user."),
    ("--call-signal-limit", "call_signals_per_user", "Call signals (SDP) sent by one user."),
    ("--hash-queue", "hash_queue", "Password checks waiting or running; more are refused."),
    ("--hash-queue-per-address", "hash_queue_per_address", "The same, per source address."),
    (
        "--sign-in-failures",
        "sign_in_failures",
        "Failed sign-ins per account and address before each next one waits twice as long.",
    ),
    (
        "--sign-in-failures-per-address",
        "sign_in_failures_per_address",
        "The same, per address whatever the account.",
    ),
)


def account_limit_options(func: F) -> F:
    defaults = Limits()
    for option, name, help_text in reversed(ACCOUNT_LIMITS):
        default = getattr(defaults, name)
        func = click.option(
            option,
            name,
            default=str(default),
            show_default=True,
            type=str if isinstance(default, Rate) else int,
            metavar="COUNT/UNIT" if isinstance(default, Rate) else None,
            callback=_rate if isinstance(default, Rate) else None,
            envvar="CRAB_" + option[2:].upper().replace("-", "_"),
            show_envvar=True,
            help=help_text,
        )(func)
    return func


def call_options(func: F) -> F:
    """Where call media may go (docs/calls.md): STUN/TURN for clients behind
    NAT, the SFU for calls bigger than --mesh-max."""
    options = [
        click.option(
            "--stun-url",
            multiple=True,
            envvar="CRAB_STUN_URL",
            show_envvar=True,
            help="A STUN server handed to clients (stun:HOST:PORT); repeatable.",
        ),
        click.option(
            "--turn-url",
            multiple=True,
            envvar="CRAB_TURN_URL",
            show_envvar=True,
            help="A TURN server (turn:HOST:3478); repeatable. Needs --turn-secret.",
        ),
        click.option(
            "--turn-secret",
            default="",
            envvar="CRAB_TURN_SECRET",
            show_envvar=True,
            help="coturn's static-auth-secret: each call gets short-lived credentials "
            "(prefer the variable: argv is visible to every user of the machine).",
        ),
        click.option(
            "--turn-ttl",
            default=12 * 3600,
            show_default=True,
            type=int,
            envvar="CRAB_TURN_TTL",
            show_envvar=True,
            help="Seconds a TURN credential lasts.",
        ),
        click.option(
            "--relay-only/--no-relay-only",
            default=False,
            envvar="CRAB_RELAY_ONLY",
            show_envvar=True,
            help="Clients send media through TURN only (hides addresses).",
        ),
        click.option(
            "--sfu-url",
            default="",
            envvar="CRAB_SFU_URL",
            show_envvar=True,
            help="Janus's HTTP API as clients reach it (http://HOST:8088/janus), for "
            "calls bigger than --mesh-max.",
        ),
        click.option(
            "--sfu-secret",
            default="",
            envvar="CRAB_SFU_SECRET",
            show_envvar=True,
            help="Janus's token_auth_secret: members get signed tokens (prefer the variable).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def call_settings(options: dict[str, Any]) -> CallSettings:
    turn, secret = tuple(options.pop("turn_url")), options.pop("turn_secret")
    if turn and not secret:
        raise click.UsageError("--turn-url needs --turn-secret (or CRAB_TURN_SECRET)")
    return CallSettings(
        stun_urls=tuple(options.pop("stun_url")),
        turn_urls=turn,
        turn_secret=secret,
        turn_ttl=options.pop("turn_ttl"),
        relay_only=options.pop("relay_only"),
        sfu_url=options.pop("sfu_url"),
        sfu_secret=options.pop("sfu_secret"),
    )


def oidc_options(func: F) -> F:
    """The team's identity provider (README, "Single sign-on")."""

    def option(name: str, help: str, **kwargs: Any) -> Callable[[F], F]:
        variable = "CRAB_" + name.lstrip("-").upper().replace("-", "_")
        return click.option(
            name, envvar=variable, show_envvar=True, help=help, **({"default": ""} | kwargs)
        )

    options: list[Callable[[F], F]] = [
        option("--oidc-issuer", "The OpenID Connect issuer URL; turns single sign-on on."),
        option("--oidc-client-id", "The client id crab's device sign-in is registered as."),
        option("--oidc-audience", "The ID tokens' audience [default: the client id]."),
        option(
            "--oidc-scopes",
            "Scopes asked for, space-separated.",
            default="openid profile email",
            show_default=True,
        ),
        option("--oidc-name", "Shown as 'Sign in with NAME' [default: the issuer's host]."),
        option(
            "--oidc-username-claim",
            "The claim a new account's username comes from (then email, then sub).",
            default="preferred_username",
            show_default=True,
        ),
        option(
            "--oidc-client-secret",
            "Only for providers (Google) whose device clients have a secret.",
        ),
        click.option(
            "--passwords/--no-passwords",
            default=True,
            show_default=True,
            envvar="CRAB_PASSWORDS",
            show_envvar=True,
            help="--no-passwords: only the identity provider signs people in.",
        ),
    ]
    for each in reversed(options):
        func = each(func)
    return func


def oidc_settings(options: dict[str, Any]) -> OidcSettings:
    o = {name: options.pop(f"oidc_{name}") for name in OIDC_NAMES}
    scopes = tuple(dict.fromkeys(["openid", *o.pop("scopes").split()]))
    found = OidcSettings(scopes=scopes, **o)
    if found.enabled:
        if not found.client_id:
            raise click.UsageError("--oidc-issuer needs --oidc-client-id (or CRAB_OIDC_CLIENT_ID)")
        try:
            check_url(found.issuer, "--oidc-issuer")
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    elif not options["passwords"]:
        raise click.UsageError("--no-passwords needs --oidc-issuer: nobody could sign in")
    return found


OIDC_NAMES = (
    "issuer",
    "client_id",
    "audience",
    "scopes",
    "name",
    "username_claim",
    "client_secret",
)


def _host_port(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """HOST:PORT (port 0: any free one) for a listener, as (host, port)."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    host = host.strip("[]")  # [::1]:9100
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", ctx, param)
    return (host, int(port))


def metrics_option(role: str) -> Callable[[F], F]:
    return click.option(
        "--metrics",
        default=None,
        metavar="HOST:PORT",
        callback=_host_port,
        envvar="CRAB_METRICS",
        show_envvar=True,
        help=f"Serve Prometheus metrics of this {role} at http://HOST:PORT/metrics (port 0: "
        "any free one; the address is logged). Keep it off the public network.",
    )


db_outage_wait_option = click.option(
    "--db-outage-wait",
    default=10.0,
    show_default=True,
    type=float,
    envvar="CRAB_DB_OUTAGE_WAIT",
    show_envvar=True,
    help="Seconds the worker retries a command while the database is unreachable.",
)


@click.group()
@click.version_option(package_name="crab")
def main() -> None:
    """crab: a terminal messenger for small teams."""
    if click.get_current_context().invoked_subcommand != "chat":
        start_up.loaded()  # chat calls it after its own last import (crab/start_up.py)
    log_setup.configure()


@main.command()
@storage_options
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="CRAB_HOST", show_envvar=True
)
@click.option(
    "--port", default=50051, show_default=True, type=int, envvar="CRAB_PORT", show_envvar=True
)
@broker_option()
@click.option(
    "--signup/--no-signup",
    default=True,
    show_default=True,
    envvar="CRAB_SIGNUP",
    show_envvar=True,
    help="Let anyone create an account; --no-signup: only `crab user add`.",
)
@click.option(
    "--worker/--no-worker",
    "run_worker",
    default=True,
    show_default=True,
    envvar="CRAB_WORKER",
    show_envvar=True,
    help="Handle commands in this process too.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="CRAB_TLS_CERT",
    show_envvar=True,
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="CRAB_TLS_KEY",
    show_envvar=True,
)
@limit_options
@db_outage_wait_option
@account_limit_options
@call_options
@oidc_options
@log_options
@metrics_option("server")
@click.option(
    "--password-hashing",
    type=click.Choice(["default", "cheap"]),
    default="default",
    envvar="CRAB_PASSWORD_HASHING",
    hidden=True,
)
def serve(data_dir: Path | None, database: str | None, **options: Any) -> None:
    """Run the server (and its worker) in this process."""
    if bool(options["tls_cert"]) != bool(options["tls_key"]):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if not options["run_worker"] and options["broker_url"].startswith("memory:"):
        raise click.UsageError(
            "--no-worker needs a shared broker (--broker amqp://...) and `crab worker`"
        )
    metrics: tuple[str, int] | None = options.pop("metrics")
    limits = {name: options.pop(name) for name in LIMIT_NAMES}
    limits |= {name: options.pop(name) for _, name, _ in ACCOUNT_LIMITS}
    options["calls"] = call_settings(options)
    options["oidc"] = oidc_settings(options)
    settings = make_settings(data_dir, database, **options)
    settings = dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, **limits))
    run(_serve(settings, metrics))


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _freeze_start_up() -> None:
    """What start-up built (modules, tables, compiled statements) lives as
    long as the process: out of the collector's way, a full collection
    walks only what requests allocate, not all of that every time."""
    gc.collect()
    gc.freeze()


async def _serve(settings: Settings, metrics: tuple[str, int] | None) -> None:
    from crab.core.app import Crab

    crab = await Crab.open(settings)
    try:
        if settings.run_worker:
            await crab.start_worker()
        stop = _stop_on_signals()
        port = await crab.start_server()
        if metrics is not None:
            await _start_metrics(crab, *metrics)
        _freeze_start_up()
        scheme = "grpcs" if settings.tls_cert else "grpc"
        log.info(
            "crab listening on %s://%s:%d; data in %s (database %s, broker %s)",
            scheme,
            settings.host,
            port,
            settings.data_dir,
            _redact(settings.database),
            _redact(settings.broker_url),
        )
        await stop.wait()
        log.info("shutting down: telling open streams, finishing calls in flight")
    finally:
        await crab.close()
    log.info("stopped")


@main.command()
@storage_options
@broker_option("The broker the API replicas use (amqp://...).")
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=int,
    envvar="CRAB_WORKER_CONCURRENCY",
    show_envvar=True,
    help="Command consumers in this process.",
)
@db_outage_wait_option
@click.option(
    "--health",
    "health",
    default=None,
    metavar="HOST:PORT",
    callback=_host_port,
    envvar="CRAB_WORKER_HEALTH",
    show_envvar=True,
    help="Serve grpc.health.v1 here (SERVING while the broker and database answer).",
)
@log_options
@metrics_option("worker")
def worker(
    data_dir: Path | None,
    database: str | None,
    broker_url: str,
    concurrency: int,
    db_outage_wait: float,
    health: tuple[str, int] | None,
    metrics: tuple[str, int] | None,
) -> None:
    """Handle commands (store, reply, publish) for `crab serve --no-worker` replicas."""
    if broker_url.startswith("memory:"):
        raise click.UsageError("a separate worker needs a shared broker: --broker amqp://...")
    settings = make_settings(
        data_dir,
        database,
        broker_url=broker_url,
        worker_concurrency=concurrency,
        db_outage_wait=db_outage_wait,
    )
    run(_work(settings, health, metrics))


async def _work(
    settings: Settings, health: tuple[str, int] | None, metrics: tuple[str, int] | None
) -> None:
    from crab.core.app import Crab

    crab = await Crab.open(settings)
    try:
        stop = _stop_on_signals()
        await crab.start_worker()
        if health is not None:
            port = await crab.start_worker_health(*health)
            log.info("crab worker health on %s:%d", health[0], port)
        if metrics is not None:
            await _start_metrics(crab, *metrics)
        _freeze_start_up()
        log.info(
            "crab worker consuming commands (database %s, broker %s, %d consumers)",
            _redact(settings.database),
            _redact(settings.broker_url),
            settings.worker_concurrency,
        )
        await stop.wait()
        log.info("shutting down: finishing the commands in hand")
    finally:
        await crab.close()
    log.info("stopped")


async def _start_metrics(crab: Crab, host: str, port: int) -> None:
    """The metrics listener; a port in use stops the start with a message."""
    try:
        bound = await crab.start_metrics(host, port)
    except OSError as error:
        raise click.ClickException(f"--metrics {host}:{port}: {error.strerror or error}") from None
    shown = f"[{host}]" if ":" in host else host
    log.info("metrics on http://%s:%d/metrics", shown, bound)


def _redact(url: str) -> str:
    """Hides a password in a URL before it goes to a log."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


@main.command()
@server_options
@click.option("--vi", is_flag=True, envvar="CRAB_VI", help="vi keys on the message line.")
@click.option(
    "--bell",
    # "none": the old name of "off".
    type=click.Choice(["all", "mentions", "off", "none"]),
    default=None,
    envvar="CRAB_BELL",
    help="Ring the terminal bell for every message elsewhere, only for mentions "
    "and personal conversations, or never. Default: as /bell last saved it, else "
    "config.toml's bell, else mentions.",
)
@click.option(
    "--order",
    type=click.Choice(["fixed", "activity"]),
    default=None,
    envvar="CRAB_ORDER",
    help="The chat list's order: fixed (as the chats began; nothing moves) or activity "
    "(newest message first). Saved for next time. Default: as last saved, else fixed.",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="CRAB_CONFIG_DIR",
    help="Where the signed-in session, settings and config.toml are kept.",
)
@click.option(
    "--mouse/--no-mouse",
    default=None,
    help="Wheel scrolls, a click opens a chat (--no-mouse leaves the terminal's own "
    "selection alone). Default: config.toml's mouse, else on.",
)
@click.option(
    "--mic",
    default=None,
    envvar="CRAB_MIC",
    help='Calls: the microphone by name, "sine:HZ", "file:PATH" or "none" (--list-devices).',
)
@click.option(
    "--speaker", default=None, envvar="CRAB_SPEAKER", help='Calls: the speaker, or "none".'
)
@click.option(
    "--camera",
    default=None,
    envvar="CRAB_CAMERA",
    help='Calls: a V4L2 camera (/dev/video0), "testsrc", "file:PATH" or "none".',
)
@click.option("--list-devices", is_flag=True, help="List the microphones and speakers, then exit.")
def chat(
    server: str,
    tls: bool,
    ca: str | None,
    vi: bool,
    bell: str | None,
    order: str | None,
    config_dir: Path | None,
    mouse: bool | None,
    mic: str | None,
    speaker: str | None,
    camera: str | None,
    list_devices: bool,
) -> None:
    """Open the full-screen chat client."""
    if list_devices:
        _list_devices()
        return
    from crab.client.tls import tls_context
    from crab.tui.app import run_chat
    from crab.tui.config import ConfigError, load_config
    from crab.tui.saved import default_config_dir

    if ":" not in server:
        raise click.UsageError("--server must be HOST:PORT")
    context = tls_context(ca) if (tls or ca) else None
    folder = config_dir or default_config_dir()
    try:
        config = load_config(folder)
    except ConfigError as error:
        click.echo(f"crab chat: {error}", err=True)
        sys.exit(2)
    _log_to_file(folder / "chat.log")
    config = dataclasses.replace(
        config,
        mic=mic or config.mic,
        speaker=speaker or config.speaker,
        camera=camera or config.camera,
    )
    run_chat(server, folder, context, vi, bell, config, mouse, order)


def _list_devices() -> None:
    try:
        from crab.calls.sources import list_devices
    except ImportError:
        raise click.ClickException(
            "calls need the calls extra: pip install 'crab[calls]' (and libportaudio2)"
        ) from None
    for name in list_devices():
        click.echo(name)


def _log_to_file(path: Path) -> None:
    """A full-screen client must not write logs over its screen: warnings
    and errors go to a file (created only if something is logged)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = logging.FileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


class _LazyGroup(click.Group):
    """A group whose commands live in a module imported only when it is used,
    from another distribution (`crab bench` is crab-bench, in bench/: it
    pulls in rich, psutil and matplotlib; serve needs none)."""

    def __init__(self, *args: Any, import_path: str, missing: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._import_path = import_path
        self._missing = missing  # the error when the module is not installed

    def _real(self) -> click.Group:
        import importlib

        module, _, name = self._import_path.partition(":")
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name not in (module, module.partition(".")[0]):
                raise
            raise click.ClickException(self._missing) from None
        group: click.Group = getattr(found, name)
        return group

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._real().get_command(ctx, cmd_name)


def _scripting() -> None:
    """login, send, tail, chats, invites: for bots, cron and pipes."""
    from crab.scripting.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_scripting()

for _command in BACKUP_COMMANDS:  # backup, restore, export (crab/backup_cli.py)
    main.add_command(_command)


@main.group(
    cls=_LazyGroup,
    import_path="crab_bench.cli:bench",
    missing="the bench is its own distribution, not installed: pip install -e ./bench "
    "in crab's repository (make install does)",
)
def bench() -> None:
    """Measure a server under load (fanout, idle, history, signin) and the client (chat)."""


main.add_command(user)
main.add_command(room)


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        main()
