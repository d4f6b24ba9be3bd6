"""compose.yaml and deploy/Caddyfile: the scaled setup's structure, read with PyYAML (``docker
compose config`` needs an engine): every service's image, the API replicas behind the proxy, the
start-up order and its health checks, the published ports, and the proxy's routes.

Each ``check_*`` function takes the parsed files, so that the last test can show each one
failing on a broken copy; the tests above it run them on the files themselves.
"""

from __future__ import annotations

import copy
import http.server
import ipaddress
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import _parser
from app.settings import Settings

ROOT = Path(__file__).parents[1]
COMPOSE = ROOT / "compose.yaml"

Compose = dict[str, Any]
Service = dict[str, Any]

IMAGES = {"postgres": "postgres:16", "rabbitmq": "rabbitmq:3-management", "proxy": "caddy:2"}
PROMENADE_IMAGE = "promenade:local"
# The published ports, as compose.yaml's opening comment documents them.
PORTS: dict[str, list[str]] = {
    "postgres": [],
    "rabbitmq": ["127.0.0.1:15672:15672"],
    "migrate": [],
    "api-1": ["127.0.0.1:8001:8000"],
    "api-2": ["127.0.0.1:8002:8000"],
    "proxy": ["8000:8000"],
    "worker": ["8080:8080", "127.0.0.1:8090:8090"],
}
# Variables of Promenade services that are not PROMENADE_* settings, and who reads them.
OTHER_VARIABLES = {"FORWARDED_ALLOW_IPS": "uvicorn: the addresses whose X-Forwarded-For it trusts"}
CADDYFILE_MOUNT = "/etc/caddy/Caddyfile"


def load_compose() -> Compose:
    compose: Compose = yaml.safe_load(COMPOSE.read_text())
    return compose


def opening_comment() -> str:
    lines = COMPOSE.read_text().splitlines()
    return "\n".join(line for line in lines[: lines.index("")] if line.startswith("#"))


def services(compose: Compose) -> dict[str, Service]:
    found: dict[str, Service] = compose["services"]
    return found


def promenade_services(compose: Compose) -> dict[str, Service]:
    return {name: s for name, s in services(compose).items() if "build" in s}


def runs(service: Service, command: str) -> bool:
    return "build" in service and service["command"][0] == command


def api_replicas(compose: Compose) -> list[str]:
    return [name for name, service in services(compose).items() if runs(service, "api")]


def is_one_shot(service: Service) -> bool:
    return runs(service, "migrate")


def listens_on(service: Service) -> dict[int, str]:
    """The ports a Promenade service listens on, each with its address."""
    environment: dict[str, str] = service["environment"]
    defaults = Settings.model_fields
    if runs(service, "api"):
        args = _parser().parse_args(service["command"])
        port = args.port or int(environment.get("PROMENADE_PORT", defaults["port"].default))
        return {port: args.host or environment.get("PROMENADE_HOST", defaults["host"].default)}
    if runs(service, "worker"):
        found = {
            int(environment.get("PROMENADE_GATEWAY_PORT", defaults["gateway_port"].default)): (
                environment.get("PROMENADE_GATEWAY_HOST", defaults["gateway_host"].default)
            )
        }
        if "PROMENADE_WORKER_PORT" in environment:
            found[int(environment["PROMENADE_WORKER_PORT"])] = environment.get(
                "PROMENADE_WORKER_HOST", defaults["worker_host"].default
            )
        return found
    return {}


def readiness_port(service: Service) -> int:
    """Where a Promenade service answers /readyz: the API's port, a worker's own."""
    if runs(service, "worker"):
        return int(service["environment"]["PROMENADE_WORKER_PORT"])
    (port,) = listens_on(service)
    return port


def python_check(service: Service) -> str:
    """The code of a Promenade service's health check (``CMD python -c CODE``)."""
    test: list[str] = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and len(test) == 4, test
    return test[3]


def urls(code: str) -> list[str]:
    return re.findall(r"'(http://[^']+)'", code)


# ---- deploy/Caddyfile, parsed into its blocks --------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)

    def find(self, name: str) -> list[Directive]:
        return find(self.block, name)


def find(directives: list[Directive], name: str) -> list[Directive]:
    """Every directive of this name, at any depth."""
    found: list[Directive] = []
    for directive in directives:
        if directive.name == name:
            found.append(directive)
        found += directive.find(name)
    return found


def parse_caddyfile(text: str) -> list[Directive]:
    """The Caddyfile's directives: one per line, ``{`` at a line's end opens its block, ``}``
    alone on a line closes it, ``#`` starts a comment (what this file uses of the format)."""
    top: list[Directive] = []
    stack = [top]
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        comment = next((i for i, token in enumerate(tokens) if token.startswith("#")), None)
        tokens = tokens[:comment]
        if not tokens:
            continue
        if tokens == ["}"]:
            assert len(stack) > 1, f"Caddyfile line {number}: }} closes nothing"
            stack.pop()
            continue
        opens = tokens[-1] == "{"
        words = tokens[:-1] if opens else tokens
        assert words and "{" not in words and "}" not in words, f"Caddyfile line {number}"
        directive = Directive(words[0], words[1:])
        stack[-1].append(directive)
        if opens:
            stack.append(directive.block)
    assert len(stack) == 1, "Caddyfile: a block is not closed"
    return top


def caddyfile_of(compose: Compose) -> Path:
    """The Caddyfile the proxy mounts, a path of this repository."""
    volumes: list[str] = services(compose)["proxy"]["volumes"]
    for volume in volumes:
        source, target, *_ = volume.split(":")
        if target == CADDYFILE_MOUNT:
            return ROOT / source
    raise AssertionError(f"the proxy mounts no {CADDYFILE_MOUNT}")


# ---- the checks ---------------------------------------------------------------------------------


def check_images(compose: Compose) -> None:
    promenade = promenade_services(compose)
    assert set(services(compose)) == set(IMAGES) | set(promenade)
    for name, service in services(compose).items():
        if name in promenade:
            assert service["build"] == "." and (ROOT / "Dockerfile").is_file(), name
            assert service["image"] == PROMENADE_IMAGE, name
        else:
            assert service["image"] == IMAGES[name], name
        expected = "no" if is_one_shot(service) else "unless-stopped"
        assert service["restart"] == expected, name


def check_environment(compose: Compose) -> None:
    known = {f"PROMENADE_{name.upper()}" for name in Settings.model_fields}
    for name, service in promenade_services(compose).items():
        environment: dict[str, str] = service["environment"]
        assert environment["PROMENADE_SECRET_KEY"].startswith("${PROMENADE_SECRET_KEY:?"), name
        for variable in environment:
            if variable.startswith("PROMENADE_"):
                assert variable in known, f"{name}: {variable} is not a setting"
            else:
                assert variable in OTHER_VARIABLES, f"{name}: who reads {variable}?"


def check_replicas(compose: Compose) -> None:
    """Two API services or more (not ``deploy.replicas``), which trust the proxy's
    X-Forwarded-For and nobody else's; the proxy's address cannot be handed to another."""
    replicas = api_replicas(compose)
    assert len(replicas) >= 2, replicas
    proxy = services(compose)["proxy"]
    address = proxy["networks"]["default"]["ipv4_address"]
    (pool,) = compose["networks"]["default"]["ipam"]["config"]
    subnet, handed_out = (
        ipaddress.ip_network(pool["subnet"]),
        ipaddress.ip_network(pool["ip_range"]),
    )
    assert ipaddress.ip_address(address) in subnet
    assert ipaddress.ip_address(address) not in handed_out
    assert address != pool["gateway"]
    for name in replicas:
        service = services(compose)[name]
        assert "deploy" not in service, name
        assert listens_on(service) == {8000: "0.0.0.0"}, name
        assert service["environment"]["FORWARDED_ALLOW_IPS"] == address, name
    assert {
        name: d["condition"] for name, d in proxy["depends_on"].items() if name in replicas
    } == dict.fromkeys(replicas, "service_healthy")


def check_depends_on(compose: Compose) -> None:
    """Every dependency is waited for: the one-shot migration until it exited 0, any other
    service until its health check passes (so it must have one)."""
    everything = services(compose)
    for name, service in everything.items():
        depends_on = service.get("depends_on", {})
        # The list form means service_started: nothing waited for.
        assert isinstance(depends_on, dict), f"{name}: depends_on as a list"
        for dependency, how in depends_on.items():
            other = everything[dependency]
            if is_one_shot(other):
                assert how == {"condition": "service_completed_successfully"}, (name, dependency)
            else:
                assert how == {"condition": "service_healthy"}, (name, dependency)
                assert "healthcheck" in other, f"{name} waits for {dependency}'s health check"
    for name, service in promenade_services(compose).items():
        assert "postgres" in service["depends_on"], name
        if not is_one_shot(service):
            assert {"rabbitmq", "migrate"} <= set(service["depends_on"]), name


def check_healthchecks(compose: Compose) -> None:
    """A long-running Promenade service's health check asks its own /readyz."""
    for name, service in promenade_services(compose).items():
        if is_one_shot(service):
            assert "healthcheck" not in service, name
            continue
        code = python_check(service)
        compile(code, f"{name}'s health check", "exec")
        assert urls(code)[0] == f"http://127.0.0.1:{readiness_port(service)}/readyz", name
    proxy_test = services(compose)["proxy"]["healthcheck"]["test"]
    assert proxy_test[0] == "CMD" and proxy_test[-1] == "http://127.0.0.1:8000/readyz"


def check_ports(compose: Compose, documented: str) -> None:
    """Published as documented, and each published port of a Promenade service is one it
    listens on at every address of its container (else Docker's forwarding finds nobody)."""
    published = {name: s.get("ports", []) for name, s in services(compose).items()}
    assert published == PORTS
    for name, mappings in published.items():
        for mapping in mappings:
            *host, container = mapping.split(":")
            assert ":".join(host) in documented, f"{mapping} is not in the opening comment"
            if name in promenade_services(compose):
                assert listens_on(services(compose)[name]).get(int(container)) == "0.0.0.0", (
                    name,
                    mapping,
                )


def check_proxy(compose: Compose, caddyfile: list[Directive]) -> None:
    """The proxy's site is its published port; every path but /metrics goes to one
    reverse_proxy over every API replica, which checks their /readyz, speaks HTTP/1.1 to them
    (the version a websocket upgrade is made in: graphql-ws at /graphql) and sets
    X-Forwarded-For itself."""
    (mapping,) = services(compose)["proxy"]["ports"]
    (site,) = caddyfile
    assert site.name == f":{mapping.split(':')[-1]}" and not site.args
    handles = site.find("handle")
    assert [h.args for h in handles] == [["/metrics"], []], "only /metrics is kept back"
    assert [(d.name, d.args) for d in handles[0].block] == [("respond", ["404"])]

    (proxy,) = find(caddyfile, "reverse_proxy")
    assert proxy in handles[1].block, "the catch-all handle proxies"
    everything = services(compose)
    assert sorted(proxy.args) == sorted(
        f"{name}:{readiness_port(everything[name])}" for name in api_replicas(compose)
    ), "every API replica, and nothing else"
    settings = {d.name: d for d in proxy.block}
    assert settings["health_uri"].args == ["/readyz"]
    assert "lb_policy" in settings
    (transport,) = proxy.find("transport")
    assert transport.args == ["http"]
    assert [(d.name, d.args) for d in transport.block] == [("versions", ["1.1"])]
    # Caddy passes upgrades and sets X-Forwarded-For from the connection unless told otherwise.
    assert not find(caddyfile, "trusted_proxies"), "a client could choose its address"
    for header in find(caddyfile, "header_up"):
        touched = header.args[0].lstrip("-+").lower()
        assert touched not in {"connection", "upgrade", "x-forwarded-for"}, header.args


# ---- the tests ----------------------------------------------------------------------------------


def test_every_service_runs_a_known_image() -> None:
    check_images(load_compose())


def test_promenade_services_set_only_what_something_reads() -> None:
    check_environment(load_compose())


def test_two_api_replicas_behind_the_proxy() -> None:
    check_replicas(load_compose())
    assert api_replicas(load_compose()) == ["api-1", "api-2"]


def test_dependencies_are_waited_for() -> None:
    check_depends_on(load_compose())


def test_health_checks_ask_readiness() -> None:
    check_healthchecks(load_compose())


def test_ports_are_published_as_documented() -> None:
    check_ports(load_compose(), opening_comment())


def test_the_proxy_routes_to_every_replica() -> None:
    compose = load_compose()
    check_proxy(compose, parse_caddyfile(caddyfile_of(compose).read_text()))


@pytest.fixture
def probe_server() -> Iterator[tuple[int, dict[str, int]]]:
    """An HTTP server on a free port answering each path with the status in the dict (200 when
    it has none), for running the health checks' own code against."""
    statuses: dict[str, int] = {}

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses.get(self.path, 200))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("name", ["api-1", "worker"])
def test_a_health_check_fails_while_a_part_is_not_ready(
    name: str, probe_server: tuple[int, dict[str, int]]
) -> None:
    """The check's own code, sent to a local server: it passes on 200s, fails on any 503."""
    port, statuses = probe_server
    code = re.sub(
        r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", python_check(services(load_compose())[name])
    )

    def exit_code() -> int:
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
        )
        return run.returncode

    assert exit_code() == 0
    for url in urls(code):
        statuses.clear()
        statuses[url.removeprefix(f"http://127.0.0.1:{port}")] = 503
        assert exit_code() != 0, url


# ---- the checks fail on a broken file ---------------------------------------------------------

Mutation = Callable[[Compose], None]


def _set(path: str, value: Any) -> Mutation:
    """Sets services' ``a.b.c`` (a key of None: deleted)."""

    def mutate(compose: Compose) -> None:
        *parents, last = path.split(".")
        node: Any = services(compose)
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return mutate


def _own(name: str) -> Mutation:
    """Gives a service copies of what YAML anchors share with others, before a change."""

    def mutate(compose: Compose) -> None:
        services(compose)[name] = copy.deepcopy(services(compose)[name])

    return mutate


def _caddyfile(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new)

    return edit


BROKEN: dict[str, tuple[list[Mutation], Callable[[str], str] | None, str]] = {
    "a replica without its health check": (
        [_set("api-2.healthcheck", None)],
        None,
        "check_depends_on",
    ),
    "a replica's health check on /healthz": (
        [
            _own("api-1"),
            _set(
                "api-1.healthcheck.test",
                [
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request; "
                    "urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)",
                ],
            ),
        ],
        None,
        "check_healthchecks",
    ),
    "the worker's health check on another port than its own": (
        [_set("worker.environment.PROMENADE_WORKER_PORT", "8091")],
        None,
        "check_healthchecks",
    ),
    "the migration waited for as healthy": (
        [_own("worker"), _set("worker.depends_on.migrate.condition", "service_healthy")],
        None,
        "check_depends_on",
    ),
    "depends_on as a list": (
        [_set("proxy.depends_on", ["api-1", "api-2"])],
        None,
        "check_depends_on",
    ),
    "a replica scaled with deploy.replicas": (
        [_set("api-1.deploy", {"replicas": 2})],
        None,
        "check_replicas",
    ),
    "every forwarder trusted": (
        [_own("api-1"), _set("api-1.environment.FORWARDED_ALLOW_IPS", "*")],
        None,
        "check_replicas",
    ),
    "a misspelt setting": (
        [_own("worker"), _set("worker.environment.PROMENADE_WORKER_PROT", "8090")],
        None,
        "check_environment",
    ),
    "the worker's port published but listened on at 127.0.0.1": (
        [_set("worker.environment.PROMENADE_WORKER_HOST", "127.0.0.1")],
        None,
        "check_ports",
    ),
    "a replica the proxy does not know": (
        [],
        _caddyfile("api-1:8000 api-2:8000", "api-1:8000"),
        "check_proxy",
    ),
    "h2c to the replicas": ([], _caddyfile("versions 1.1", "versions h2c"), "check_proxy"),
    "client-sent X-Forwarded-For believed": (
        [],
        _caddyfile("lb_policy least_conn", "lb_policy least_conn\ntrusted_proxies 0.0.0.0/0"),
        "check_proxy",
    ),
    "an unclosed block": ([], _caddyfile("\t}\n}", "\t}\n"), "parse_caddyfile"),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_the_checks_catch_a_broken_file(broken: str) -> None:
    mutations, edit, check = BROKEN[broken]
    compose = copy.deepcopy(load_compose())
    for mutate in mutations:
        mutate(compose)
    text = caddyfile_of(compose).read_text()
    if edit is not None:
        text = edit(text)
    checks: dict[str, Callable[[], object]] = {
        "check_images": lambda: check_images(compose),
        "check_environment": lambda: check_environment(compose),
        "check_replicas": lambda: check_replicas(compose),
        "check_depends_on": lambda: check_depends_on(compose),
        "check_healthchecks": lambda: check_healthchecks(compose),
        "check_ports": lambda: check_ports(compose, opening_comment()),
        "check_proxy": lambda: check_proxy(compose, parse_caddyfile(text)),
        "parse_caddyfile": lambda: parse_caddyfile(text),
    }
    with pytest.raises(AssertionError):
        checks[check]()
