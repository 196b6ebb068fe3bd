"""The scale-out deployment files, checked offline (no Docker, no cluster):
docker-compose.yml and its nginx.conf by structure, deploy/k8s against the
Kubernetes OpenAPI schemas that kubernetes-validate ships, and the crab
commands and CRAB_* variables in both against the real CLI."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from crab.cli import main as crab_cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "compose" / "nginx.conf"
K8S = ROOT / "deploy" / "k8s"
PORT = 50051
CALL_VARIABLES = {"CRAB_TURN_URL", "CRAB_TURN_SECRET", "CRAB_SFU_URL", "CRAB_SFU_SECRET"}
JANUS = ROOT / "deploy" / "janus"


def _k8s_versions() -> list[str]:
    """The oldest Kubernetes with GA gRPC probes (1.27) that the package has
    schemas for, and the newest."""
    shipped = sorted(
        {".".join(v.split(".")[:2]) for v in all_versions()},
        key=lambda v: tuple(int(n) for n in v.split(".")),
    )
    usable = [v for v in shipped if tuple(int(n) for n in v.split(".")) >= (1, 27)]
    assert usable, f"kubernetes-validate has no schemas from 1.27 on: {shipped}"
    return sorted({usable[0], usable[-1]}, key=usable.index)


K8S_VERSIONS = _k8s_versions()


# ---- helpers ------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _interpolate(value: str) -> str:
    """Compose's ${NAME:-default}, taking the default (what a plain checkout runs)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def _argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    assert isinstance(command, list), "commands as lists: no shell in between"
    return [str(part) for part in command]


def _crab_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _services().items() if _argv(s)[:1] == ["crab"]}


def _api_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _crab_services().items() if _argv(s)[1:2] == ["serve"]}


def _worker_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _crab_services().items() if _argv(s)[1:2] == ["worker"]}


def _k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in _k8s_files():
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _k8s(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _dockerfile_uid() -> int:
    match = re.search(r"useradd[^\n]*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile creates its user with a fixed --uid"
    return int(match.group(1))


def _check_cli(argv: list[str], env: dict[str, str]) -> None:
    """argv parses with the real `crab` CLI, and every CRAB_* variable is one
    that command reads (or the signing secret, which make_settings reads)."""
    assert argv[0] == "crab"
    command = crab_cli.commands[argv[1]]
    command.make_context(argv[1], argv[2:])  # raises on an unknown option
    known = {"CRAB_JWT_SECRET"}
    for param in command.params:
        envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
        known |= {e for e in envvars if e}
    unknown = {k for k in env if k.startswith("CRAB_")} - known
    assert not unknown, f"`{' '.join(argv[:2])}` reads no {sorted(unknown)}"


# ---- docker-compose.yml ---------------------------------------------------------


def test_compose_runs_the_whole_stack() -> None:
    services = _services()
    assert {"postgres", "rabbitmq", "nginx"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3")
    assert len(_api_services()) == 2, "two API replicas"
    workers = sum(s.get("deploy", {}).get("replicas", 1) for s in _worker_services().values())
    assert workers == 2, "two workers"


def test_compose_crab_services_share_one_image_and_config() -> None:
    crab = _crab_services()
    assert set(crab) == set(_api_services()) | set(_worker_services())
    assert {(str(s.get("build")), s.get("image")) for s in crab.values()} == {(".", "crab:local")}
    envs = {
        n: {k: _interpolate(str(v)) for k, v in s["environment"].items()} for n, s in crab.items()
    }
    apis = [envs[n] for n in _api_services()]
    assert all(env == apis[0] for env in apis), "every replica sees the same config"
    for name in _worker_services():
        # The workers: the same, without where call media goes (APIs only).
        assert envs[name] == {k: v for k, v in apis[0].items() if k not in CALL_VARIABLES}, name
    env = apis[0]
    assert env["CRAB_DATABASE"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["CRAB_DATABASE"]
    assert env["CRAB_BROKER"].startswith("amqp://") and "@rabbitmq:5672/" in env["CRAB_BROKER"]
    assert len(env["CRAB_JWT_SECRET"]) >= 32, "crab refuses a shorter signing secret"


def test_compose_commands_and_variables_are_the_clis() -> None:
    for name, service in _api_services().items():
        argv = _argv(service)
        assert argv[:3] == ["crab", "serve", "--no-worker"], name
        assert argv[argv.index("--host") + 1] == "0.0.0.0", name
        assert argv[argv.index("--port") + 1] == str(PORT), name
    for name, service in _worker_services().items():
        assert _argv(service)[:2] == ["crab", "worker"], name
    for service in _crab_services().values():
        _check_cli(_argv(service), service["environment"])


def test_compose_starts_crab_after_healthy_backing_services() -> None:
    services = _services()
    for name, service in _crab_services().items():
        depends = service["depends_on"]
        for backing in ("postgres", "rabbitmq"):
            assert depends[backing] == {"condition": "service_healthy"}, (name, backing)
    for name, service in services.items():
        for target, how in service.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", (name, target)
            check = services[target].get("healthcheck", {})
            assert check.get("test") and not check.get("disable"), f"{target} has no healthcheck"


def test_compose_healthchecks() -> None:
    services = _services()

    def test_of(name: str) -> str:
        return " ".join(services[name]["healthcheck"]["test"])

    assert "pg_isready" in test_of("postgres")
    assert "rabbitmq-diagnostics" in test_of("rabbitmq")
    for name in _api_services():
        assert f"python -m crab.healthcheck 127.0.0.1:{PORT}" in test_of(name)
    for name, service in _worker_services().items():
        # The worker's own health service, on the port its --health gives.
        health = _argv(service)[_argv(service).index("--health") + 1]
        assert f"python -m crab.healthcheck {health}" in test_of(name), name


def test_compose_keeps_postgres_on_a_named_volume() -> None:
    compose = _compose()
    volumes = [v.split(":")[0] for v in compose["services"]["postgres"]["volumes"]]
    assert any(v in compose["volumes"] for v in volumes)


def test_nginx_balances_grpc_over_every_api_replica() -> None:
    nginx = _services()["nginx"]
    assert any(p.endswith(f"{PORT}:{PORT}") for p in nginx["ports"])
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nginx["volumes"]}
    assert (ROOT / mounts["/etc/nginx/nginx.conf"]).resolve() == NGINX.resolve()
    assert set(nginx["depends_on"]) == set(_api_services())

    conf = re.sub(r"#[^\n]*", "", NGINX.read_text())
    (upstream,) = re.findall(r"upstream\s+api_backends\s*\{([^}]*)\}", conf)
    servers = set(re.findall(r"^\s*server\s+(\S+?)\s*;", upstream, re.M))
    assert servers == {f"{name}:{PORT}" for name in _api_services()}
    assert re.search(r"grpc_pass\s+grpc://api_backends\s*;", conf)
    assert re.search(rf"listen\s+{PORT}\s*;", conf) and re.search(r"http2\s+on\s*;", conf)
    # Session streams live for hours: no 60 s default may cut them.
    for directive in ("grpc_read_timeout", "grpc_send_timeout", "client_body_timeout"):
        assert re.search(rf"{directive}\s+1h\s*;", conf), directive
    assert re.search(r"client_max_body_size\s+0\s*;", conf)
    assert conf.count("{") == conf.count("}")


# ---- deploy/k8s ---------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", _k8s_files(), ids=lambda p: p.name)
def test_k8s_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        # strict: an unknown or misspelt field fails too
        kubernetes_validate.validate(doc, version, strict=True)


def test_k8s_validation_catches_mistakes() -> None:
    """The schema check above is not vacuous."""
    good = _k8s("Deployment", "crab-api")
    misspelt = copy.deepcopy(good)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    named_port = copy.deepcopy(good)
    _container(named_port)["readinessProbe"]["grpc"]["port"] = "grpc"  # must be a number
    for bad in (misspelt, named_port):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_and_sets_the_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in _k8s_files())
    images = {i["name"] for i in kustomization["images"]}
    for doc in _k8s_docs():
        if doc["kind"] == "Deployment":
            assert _container(doc)["image"] in images, doc["metadata"]["name"]


def test_k8s_api_and_workers() -> None:
    api = _k8s("Deployment", "crab-api")
    worker = _k8s("Deployment", "crab-worker")
    assert api["spec"]["replicas"] == 2 and worker["spec"]["replicas"] == 2
    api_argv = _container(api)["command"]
    assert api_argv[:3] == ["crab", "serve", "--no-worker"]
    assert api_argv[api_argv.index("--port") + 1] == str(PORT)
    assert _container(worker)["command"][:2] == ["crab", "worker"]
    for deployment in (api, worker):
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"]["matchLabels"], labels), name
        pod = template["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == _dockerfile_uid(), name
        container = _container(deployment)
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), (name, kind)


@pytest.mark.parametrize("name", ["crab-api", "crab-worker"])
def test_k8s_probes_are_grpc_on_the_container_port(name: str) -> None:
    container = _container(_k8s("Deployment", name))
    (port,) = [p for p in container["ports"] if p["name"] != "metrics"]
    if name == "crab-api":
        assert port["containerPort"] == PORT
    else:  # the worker's health service, where its --health listens
        argv = container["command"]
        assert argv[argv.index("--health") + 1] == f"0.0.0.0:{port['containerPort']}"
    probes = ["readinessProbe", "livenessProbe"] + (["startupProbe"] if name == "crab-api" else [])
    assert set(probes) <= set(container)
    for probe in probes:
        assert set(container[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}
        assert container[probe]["grpc"]["port"] == port["containerPort"], probe


@pytest.mark.parametrize("name", ["crab-api", "crab-worker"])
def test_k8s_pods_are_scraped_where_crab_serves_its_metrics(name: str) -> None:
    deployment = _k8s("Deployment", name)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    config = _k8s("ConfigMap", "crab-config")["data"]
    host, _, port = config["CRAB_METRICS"].rpartition(":")
    assert host == "0.0.0.0" and annotations["prometheus.io/port"] == port
    ports = {p["name"]: p["containerPort"] for p in _container(deployment)["ports"]}
    assert ports["metrics"] == int(port)


def test_compose_crab_services_serve_metrics() -> None:
    services = _services()
    crab = [s for s in services.values() if str(s.get("image", "")).startswith("crab:")]
    assert len(crab) >= 3
    for service in crab:
        assert service["environment"]["CRAB_METRICS"] == "0.0.0.0:9100"


def test_k8s_env_comes_from_the_configmap_and_secret() -> None:
    config = _k8s("ConfigMap", "crab-config")["data"]
    secret = _k8s("Secret", "crab-secrets")["stringData"]
    assert "CRAB_JWT_SECRET" in secret
    assert not {k for k in config if "PASSWORD" in k or "SECRET" in k}, "secrets in the ConfigMap"
    for name in ("crab-api", "crab-worker"):
        container = _container(_k8s("Deployment", name))
        refs = container["envFrom"]
        assert {"configMapRef": {"name": "crab-config"}} in refs, name
        assert {"secretRef": {"name": "crab-secrets"}} in refs, name
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["CRAB_DATABASE"].startswith("postgresql+asyncpg://"), name
        assert env["CRAB_BROKER"].startswith("amqp://"), name
        for key, value in env.items():
            # Kubernetes fills $(NAME) from variables defined before; an unknown
            # one stays in the value as is.
            missing = set(re.findall(r"\$\((\w+)\)", value)) - set(config) - set(secret)
            assert not missing, f"{name} {key} refers to undefined {sorted(missing)}"
        _check_cli(container["command"], {**config, **secret, **env})


def test_k8s_service_and_budget_cover_the_api_only() -> None:
    api_labels = _k8s("Deployment", "crab-api")["spec"]["template"]["metadata"]["labels"]
    worker_labels = _k8s("Deployment", "crab-worker")["spec"]["template"]["metadata"]["labels"]
    services = [d for d in _k8s_docs() if d["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services] == ["crab-api"]
    (service,) = services
    assert _selects(service["spec"]["selector"], api_labels)
    assert not _selects(service["spec"]["selector"], worker_labels)
    (port,) = service["spec"]["ports"]
    container_ports = _container(_k8s("Deployment", "crab-api"))["ports"]
    assert port["port"] == PORT
    assert port["targetPort"] in {p["name"] for p in container_ports} | {PORT}
    budget = _k8s("PodDisruptionBudget", "crab-api")
    assert budget["spec"]["minAvailable"] == 1
    assert _selects(budget["spec"]["selector"]["matchLabels"], api_labels)
    assert not _selects(budget["spec"]["selector"]["matchLabels"], worker_labels)


def test_cli_check_rejects_what_the_cli_does_not_know() -> None:
    """_check_cli is not vacuous."""
    with pytest.raises(click.NoSuchOption):
        _check_cli(["crab", "serve", "--no-such-option"], {})
    with pytest.raises(AssertionError):
        _check_cli(["crab", "worker"], {"CRAB_NO_SUCH_VARIABLE": "x"})


# ---- calls: coturn and Janus beside crab ------------------------------------------


def _option(argv: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"{name}=")]
    return value


def _port_of(url: str) -> int:
    match = re.search(r":(\d+)(/|$)", url.split("://")[-1])
    assert match, url
    return int(match.group(1))


def _jcfg(name: str) -> str:
    return re.sub(r"#[^\n]*", "", (JANUS / name).read_text())


def test_janus_image_is_videoroom_over_http_with_token_auth() -> None:
    main = _jcfg("janus.jcfg")
    assert re.search(r"token_auth\s*=\s*true", main)
    assert re.search(r'token_auth_secret\s*=\s*"@TOKEN_AUTH_SECRET@"', main)
    http = _jcfg("janus.transport.http.jcfg")
    assert re.search(r"http\s*=\s*true", http) and re.search(r'base_path\s*=\s*"/janus"', http)
    assert re.search(r"admin_http\s*=\s*false", http), "no admin API"
    dockerfile = (JANUS / "Dockerfile").read_text()
    # Only the VideoRoom plugin and the HTTP transport are loaded.
    assert re.findall(r"libjanus_\w+\.so", dockerfile) == [
        "libjanus_videoroom.so",
        "libjanus_http.so",
    ]
    for name in ("janus.jcfg", "janus.plugin.videoroom.jcfg", "janus.transport.http.jcfg"):
        assert name in dockerfile
    entrypoint = (JANUS / "entrypoint.sh").read_text()
    assert "@TOKEN_AUTH_SECRET@|$JANUS_TOKEN_AUTH_SECRET" in entrypoint
    assert ': "${JANUS_TOKEN_AUTH_SECRET:?' in entrypoint, "refuses to start without it"


def test_compose_runs_coturn_and_janus_on_the_apis_secrets() -> None:
    services = _services()
    env = {
        k: _interpolate(str(v))
        for k, v in next(iter(_api_services().values()))["environment"].items()
    }
    coturn, janus = services["coturn"], services["janus"]
    argv = [_interpolate(a) for a in _argv(coturn)]
    assert "--use-auth-secret" in argv
    assert _option(argv, "--static-auth-secret") == env["CRAB_TURN_SECRET"]
    assert _port_of(env["CRAB_TURN_URL"]) == int(_option(argv, "--listening-port"))
    assert env["CRAB_TURN_URL"].startswith("turn:")
    assert _interpolate(janus["environment"]["JANUS_TOKEN_AUTH_SECRET"]) == env["CRAB_SFU_SECRET"]
    assert janus["build"] == "deploy/janus"
    http_port = re.search(r"port\s*=\s*(\d+)", _jcfg("janus.transport.http.jcfg"))
    assert http_port and _port_of(env["CRAB_SFU_URL"]) == int(http_port.group(1))
    assert env["CRAB_SFU_URL"].endswith("/janus")
    # Media on many UDP ports: both on the host's network.
    assert coturn["network_mode"] == janus["network_mode"] == "host"
    for name in ("CRAB_TURN_SECRET", "CRAB_SFU_SECRET"):
        assert len(env[name]) >= 16, name


def _secret_key(container: dict[str, Any], variable: str) -> str:
    (entry,) = [e for e in container["env"] if e["name"] == variable]
    ref = entry["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "crab-secrets"
    key: str = ref["key"]
    return key


def test_k8s_runs_coturn_and_janus_on_the_apis_secrets() -> None:
    api = {e["name"]: e["value"] for e in _container(_k8s("Deployment", "crab-api"))["env"]}
    secret = _k8s("Secret", "crab-secrets")["stringData"]
    config = _k8s("ConfigMap", "crab-config")["data"]
    coturn_pod = _k8s("Deployment", "crab-coturn")["spec"]["template"]["spec"]
    janus_pod = _k8s("Deployment", "crab-janus")["spec"]["template"]["spec"]
    coturn, janus = (
        _container(_k8s("Deployment", "crab-coturn")),
        _container(_k8s("Deployment", "crab-janus")),
    )
    # coturn checks TURN credentials with the secret crab-api signs them with.
    turn_key = _secret_key(coturn, "TURN_SECRET")
    assert turn_key in secret and api["CRAB_TURN_SECRET"] == f"$({turn_key})"
    assert "--use-auth-secret" in coturn["args"]
    assert _option(coturn["args"], "--static-auth-secret") == "$(TURN_SECRET)"
    assert _port_of(api["CRAB_TURN_URL"]) == int(_option(coturn["args"], "--listening-port"))
    # Janus checks tokens with the secret crab-api signs them with.
    sfu_key = _secret_key(janus, "JANUS_TOKEN_AUTH_SECRET")
    assert sfu_key in secret and api["CRAB_SFU_SECRET"] == f"$({sfu_key})"
    sfu_url = re.sub(r"\$\((\w+)\)", lambda m: config[m.group(1)], api["CRAB_SFU_URL"])
    assert _port_of(sfu_url) == janus["ports"][0]["containerPort"] and sfu_url.endswith("/janus")
    assert coturn_pod["hostNetwork"] is True and janus_pod["hostNetwork"] is True
    assert janus_pod["securityContext"]["runAsUser"] == int(
        re.search(r"--uid (\d+)", (JANUS / "Dockerfile").read_text()).group(1)  # type: ignore[union-attr]
    )
