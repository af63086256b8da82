"""The clusters config: a TOML file of clusters and the nodes in them.

    [ssh]
    known_hosts = "~/.ssh/known_hosts"   # optional; host keys are always verified
    connect_timeout = "5s"               # optional

    [clusters.east]
    read_only = false                    # optional: no migration may start from or to it
    hooks = ["lb"]                       # optional: hooks run for every migration from or
                                         # to this cluster (a container's label
                                         # `whimbrel.hooks = "lb,dns"` may name more)

    [hooks.lb]                           # optional: programs whimbrel runs on the operator's
    before_freeze = ["/usr/local/bin/lb-hook"]  # host (argv, no shell) with WHIMBREL_* in
    commit = ["/usr/local/bin/lb-hook"]  # their environment: before the freeze (a failure
    abort = ["/usr/local/bin/lb-hook"]   # rolls back), at commit (retried), and when the
    timeout = "10s"                      # container stays on its source after before_freeze
    attempts = 3                         # ran (retried); see backends/hooks.py

    [[nodes]]
    name = "east-1"
    cluster = "east"
    address = "198.18.0.10:22"           # host[:port] as the operator reaches it
    wan_address = "198.19.1.10"          # how nodes of other clusters reach it (default: host)
    ssh_user = "root"                    # optional: ~/.ssh/config and the agent otherwise
    become = "sudo"                      # optional: a user other than root runs whimbrel's
                                         # node helpers as root with `sudo -n` (NOPASSWD)
    identity_file = "~/.ssh/id_ed25519"  # optional
    docker_socket = "/var/run/docker.sock"  # optional, this is the default
    authorized_keys = "~/.ssh/authorized_keys"  # optional: where this node's sshd reads keys;
                                         # whimbrel adds a short-lived key there per migration
    link_from = "198.19.1.10"            # optional: the address(es) other nodes see this one
                                         # connect from (an OpenSSH pattern list)

With `link_from`, the short-lived key a target node trusts for a migration from this node
carries `from="..."`, so it works from those addresses only. It is opt-in: a relay or NAT
between the nodes shows the target another address than the source's own (the lab's WAN
relay does), and a wrong pattern makes sshd refuse every link from the node. Host names
match only where the target's sshd looks names up (UseDNS yes).

Every error names the file, the field and what was expected, in one line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whimbrel.backends.errors import UsageError
from whimbrel.backends.units import UnitError, parse_duration

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_AUTHORIZED_KEYS = "~/.ssh/authorized_keys"
DEFAULT_SSH_PORT = 22
DEFAULT_CONNECT_TIMEOUT_S = 5.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# One entry of an OpenSSH from= pattern list: an IPv4 or IPv6 address or CIDR block, or a host
# name, with `*` and `?` wildcards; nothing that could end the quoted option on the node.
_FROM_ENTRY = re.compile(r"[A-Za-z0-9.:*?-]+(/[0-9]{1,3})?")


class ConfigError(UsageError):
    """The config file is missing or wrong; the message names file, field and expectation."""


@dataclass(frozen=True)
class Cluster:
    name: str
    read_only: bool = False
    hooks: tuple[str, ...] = ()  # names of [hooks.NAME] tables


# When a hook runs: the moments of a migration its users re-point clients at.
HOOK_EVENTS = ("before_freeze", "commit", "abort")


@dataclass(frozen=True)
class Hook:
    """A [hooks.NAME] table: a program (argv) per event, run on the operator's host."""

    name: str
    argv: Mapping[str, tuple[str, ...]]  # event -> argv, for the events it handles
    timeout_s: float = 10.0
    attempts: int = 3  # commit and abort are retried: the container's place is decided


@dataclass(frozen=True)
class Node:
    name: str
    cluster: str
    host: str
    port: int = DEFAULT_SSH_PORT
    wan_address: str = ""
    ssh_user: str | None = None
    identity_file: Path | None = None
    docker_socket: str = DEFAULT_DOCKER_SOCKET
    authorized_keys: str = DEFAULT_AUTHORIZED_KEYS
    link_from: str | None = None  # an OpenSSH pattern list; None: no from= on link keys
    become: str | None = None  # "sudo": node helpers run as root through `sudo -n`

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_SSH_PORT else f"{host}:{self.port}"


@dataclass(frozen=True)
class Config:
    path: Path
    clusters: dict[str, Cluster]
    nodes: tuple[Node, ...]
    known_hosts: Path | None = None
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    hooks: Mapping[str, Hook] = field(default_factory=dict, hash=False, compare=False)
    # The [console] table (theme, read_only, keys): read by the console, which validates it.
    console: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes) or "none"
        raise UsageError(f"no node named {name!r} in {self.path} (nodes: {known})")

    def nodes_of(self, cluster: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.cluster == cluster)


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """$WHIMBREL_CONFIG, else $XDG_CONFIG_HOME/whimbrel/config.toml (~/.config by default)."""
    env = os.environ if env is None else env
    if env.get("WHIMBREL_CONFIG"):
        return Path(env["WHIMBREL_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "whimbrel" / "config.toml"


def resolve_config_path(cli_path: str | None, env: Mapping[str, str] | None = None) -> Path:
    """`--config` beats `WHIMBREL_CONFIG` beats the XDG default."""
    return Path(cli_path).expanduser() if cli_path else default_config_path(env)


def load_config(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no config file (create one, or run `whimbrel lab up` for a local lab)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    reader = _Reader(path)
    reader.only_keys(data, "", {"ssh", "clusters", "nodes", "hooks", "console"})
    known_hosts, timeout = _parse_ssh(reader, data)
    hooks = _parse_hooks(reader, data)
    clusters = _parse_clusters(reader, data, hooks)
    nodes = _parse_nodes(reader, data, clusters)
    return Config(
        path=path,
        clusters=clusters,
        nodes=nodes,
        known_hosts=known_hosts,
        connect_timeout_s=timeout,
        hooks=hooks,
        console=reader.table(data, "console", required=False),
    )


def _parse_ssh(reader: _Reader, data: Mapping[str, Any]) -> tuple[Path | None, float]:
    """The [ssh] table: the known_hosts file and the connect timeout."""
    ssh = reader.table(data, "ssh", required=False)
    reader.only_keys(ssh, "ssh", {"known_hosts", "connect_timeout"})
    known_hosts = reader.optional_path(ssh, "ssh", "known_hosts")
    return known_hosts, reader.duration(ssh, "ssh", "connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)


def _parse_hooks(reader: _Reader, data: Mapping[str, Any]) -> dict[str, Hook]:
    """The [hooks.NAME] tables: each an argv (a list of strings, never a shell line) for one
    or more events, with a timeout and a number of attempts."""
    hooks: dict[str, Hook] = {}
    for name, where, body in reader.named_tables(data, "hooks", "[hooks.lb]", required=False):
        reader.only_keys(body, where, {*HOOK_EVENTS, "timeout", "attempts"})
        argv = {e: reader.argv(body, where, e) for e in HOOK_EVENTS if e in body}
        if not argv:
            reader.fail(where, f"at least one of {', '.join(HOOK_EVENTS)}", None)
        attempts = body.get("attempts", 3)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
            reader.fail(f"{where}.attempts", "an integer from 1 to 10", attempts)
        timeout = reader.duration(body, where, "timeout", 10.0)
        hooks[name] = Hook(name, argv, timeout, attempts)
    return hooks


def _parse_clusters(
    reader: _Reader, data: Mapping[str, Any], hooks: Mapping[str, Hook]
) -> dict[str, Cluster]:
    clusters: dict[str, Cluster] = {}
    for name, where, body in reader.named_tables(
        data, "clusters", "[clusters.east]", required=True
    ):
        reader.only_keys(body, where, {"read_only", "hooks"})
        named = body.get("hooks", [])
        if not isinstance(named, list) or not all(isinstance(h, str) for h in named):
            reader.fail(f"{where}.hooks", 'an array of hook names, e.g. ["lb"]', named)
        for hook in named:
            if hook not in hooks:
                known = ", ".join(hooks) or "none"
                raise ConfigError(
                    f"{reader.path}: {where}.hooks: no [hooks.{hook}] table (hooks: {known})"
                )
        read_only = reader.boolean(body, where, "read_only", False)
        clusters[name] = Cluster(name, read_only, tuple(dict.fromkeys(named)))
    return clusters


_NODE_FIELDS = frozenset(
    {
        "name",
        "cluster",
        "address",
        "wan_address",
        "ssh_user",
        "identity_file",
        "docker_socket",
        "authorized_keys",
        "link_from",
        "become",
    }
)


def _parse_nodes(
    reader: _Reader, data: Mapping[str, Any], clusters: Mapping[str, Cluster]
) -> tuple[Node, ...]:
    """The [[nodes]] array: each entry named once, in a declared cluster."""
    raw_nodes = data.get("nodes")
    if raw_nodes is None:
        reader.fail("nodes", "at least one [[nodes]] entry", None)
    if not isinstance(raw_nodes, list) or not raw_nodes:
        reader.fail("nodes", "a non-empty array of tables ([[nodes]])", raw_nodes)
    nodes: list[Node] = []
    seen: dict[str, str] = {}
    for index, body in enumerate(raw_nodes):
        where = f"nodes[{index}]"
        if not isinstance(body, Mapping):
            reader.fail(where, "a table ([[nodes]])", body)
        name = reader.string(body, where, "name")
        reader.check_name(name, f"{where}.name")
        named = f"{where} ({name})"
        reader.only_keys(body, named, _NODE_FIELDS)
        if name in seen:
            raise ConfigError(
                f"{reader.path}: {named}.name: duplicate node name, also {seen[name]}"
            )
        seen[name] = where
        nodes.append(_parse_node(reader, body, named, name, clusters))
    return tuple(nodes)


def _parse_node(
    reader: _Reader,
    body: Mapping[str, Any],
    where: str,
    name: str,
    clusters: Mapping[str, Cluster],
) -> Node:
    """One [[nodes]] entry, its name already read and checked."""
    cluster = reader.string(body, where, "cluster")
    if cluster not in clusters:
        known = ", ".join(clusters) or "none"
        raise ConfigError(
            f"{reader.path}: {where}.cluster: unknown cluster {cluster!r} (declared: {known})"
        )
    host, port = reader.host_port(body, where, "address")
    wan = reader.string(body, where, "wan_address", default=host)
    if not wan or any(c.isspace() for c in wan):
        reader.fail(f"{where}.wan_address", "a host name or address", wan)
    socket = reader.string(body, where, "docker_socket", default=DEFAULT_DOCKER_SOCKET)
    if not socket.startswith("/"):
        reader.fail(f"{where}.docker_socket", "an absolute path on the node", socket)
    authorized_keys = reader.string(body, where, "authorized_keys", default=DEFAULT_AUTHORIZED_KEYS)
    if not authorized_keys.startswith(("/", "~/")):
        reader.fail(f"{where}.authorized_keys", "a path starting with / or ~/", authorized_keys)
    become = reader.string(body, where, "become", default=None)
    if become not in (None, "sudo"):
        reader.fail(f"{where}.become", '"sudo" (or nothing: the SSH user is root)', become)
    return Node(
        name=name,
        cluster=cluster,
        host=host,
        port=port,
        wan_address=wan,
        ssh_user=reader.string(body, where, "ssh_user", default=None),
        identity_file=reader.optional_path(body, where, "identity_file"),
        docker_socket=socket,
        authorized_keys=authorized_keys,
        link_from=reader.link_from(body, where),
        become=become,
    )


def _from_entry(entry: str) -> bool:
    if not _FROM_ENTRY.fullmatch(entry):
        return False
    if "/" not in entry:
        return True
    # sshd refuses the whole key for a CIDR block it cannot read.
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


class _Reader:
    """Typed field access that raises ConfigError naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, got: Any) -> None:
        shown = "nothing" if got is None else f"{_type_name(got)} {got!r}"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise ConfigError(f"{self.path}: {where}: expected {expected}, got {shown}")

    def only_keys(self, body: Mapping[str, Any], where: str, allowed: Set[str]) -> None:
        for key in body:
            if key not in allowed:
                place = f"{where}.{key}" if where else key
                known = ", ".join(sorted(allowed))
                raise ConfigError(f"{self.path}: {place}: unknown field (known here: {known})")

    def table(self, body: Mapping[str, Any], key: str, *, required: bool) -> Mapping[str, Any]:
        value = body.get(key)
        if value is None:
            if required:
                self.fail(key, f"a [{key}] table", None)
            return {}
        if not isinstance(value, Mapping):
            self.fail(key, "a table", value)
        return value

    def named_tables(
        self, data: Mapping[str, Any], key: str, example: str, *, required: bool
    ) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
        """Each [KEY.NAME] table: its name (checked), where it is, and its body."""
        for name, body in self.table(data, key, required=required).items():
            where = f"{key}.{name}"
            self.check_name(name, where)
            if not isinstance(body, Mapping):
                self.fail(where, f"a table, e.g. {example}", body)
            yield name, where, body

    def string(self, body: Mapping[str, Any], where: str, key: str, default: Any = ...) -> Any:
        value = body.get(key)
        if value is None:
            if default is ...:
                self.fail(f"{where}.{key}", "a string (required field)", None)
            return default
        if not isinstance(value, str) or not value:
            self.fail(f"{where}.{key}", "a non-empty string", value)
        return value

    def boolean(self, body: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
        value = body.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{where}.{key}", "true or false", value)
        return value

    def argv(self, body: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
        value = body.get(key)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(a, str) and a and "\0" not in a for a in value)
        ):
            self.fail(
                f"{where}.{key}", 'a program and its arguments, e.g. ["/usr/bin/lb", "x"]', value
            )
        return tuple(value)

    def optional_path(self, body: Mapping[str, Any], where: str, key: str) -> Path | None:
        value = self.string(body, where, key, default=None)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.path.parent / path)

    def duration(self, body: Mapping[str, Any], where: str, key: str, default: float) -> float:
        value = body.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(f"{where}.{key}", 'a duration such as "5s"', value)
        try:
            return parse_duration(str(value), f"{where}.{key}", allow_zero=False)
        except UnitError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    def link_from(self, body: Mapping[str, Any], where: str) -> str | None:
        value = self.string(body, where, "link_from", default=None)
        if value is not None and not all(_from_entry(e) for e in value.split(",")):
            self.fail(
                f"{where}.link_from",
                'addresses, CIDR blocks or host names, comma-separated (e.g. "198.18.0.0/16")',
                value,
            )
        return value

    def check_name(self, name: str, where: str) -> None:
        if not _NAME.match(name):
            self.fail(where, "a name of letters, digits, '.', '_', '-' (at most 63)", name)

    def host_port(self, body: Mapping[str, Any], where: str, key: str) -> tuple[str, int]:
        value = self.string(body, where, key)
        text = value.strip()
        port = DEFAULT_SSH_PORT
        if text.startswith("["):  # [v6]:port
            host, _, rest = text[1:].partition("]")
            if rest.startswith(":"):
                port = self._port(rest[1:], where, key, value)
            elif rest:
                self.fail(f"{where}.{key}", "host[:port]", value)
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            port = self._port(port_text, where, key, value)
        else:
            host = text
        if not host or any(c.isspace() or c in "/@" for c in host):
            self.fail(f"{where}.{key}", "host[:port]", value)
        return host, port

    def _port(self, text: str, where: str, key: str, value: str) -> int:
        if not text.isdigit() or not 0 < int(text) < 65536:
            self.fail(f"{where}.{key}", "host[:port] with a port from 1 to 65535", value)
        return int(text)
