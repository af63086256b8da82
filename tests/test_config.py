"""The clusters config: what a valid file resolves to, and one clear line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from whimbrel.app.cli import main
from whimbrel.backends.config import (
    ConfigError,
    default_config_path,
    load_config,
    resolve_config_path,
)

VALID = """
[ssh]
known_hosts = "known_hosts"
connect_timeout = "2s"

[clusters.east]
[clusters.west]
read_only = true

[[nodes]]
name = "east-1"
cluster = "east"
address = "198.18.1.10"
wan_address = "198.19.1.10"
ssh_user = "root"
identity_file = "/keys/id"
docker_socket = "/run/docker.sock"
link_from = "198.18.1.1,198.18.2.0/24"

[[nodes]]
name = "west-1"
cluster = "west"
address = "[2001:db8::1]:2222"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_valid_config_resolves_nodes_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    east, west = config.nodes
    assert (east.host, east.port, east.wan_address, east.ssh_user) == (
        "198.18.1.10",
        22,
        "198.19.1.10",
        "root",
    )
    assert east.identity_file == Path("/keys/id")
    assert (west.host, west.port, west.address) == ("2001:db8::1", 2222, "[2001:db8::1]:2222")
    assert west.wan_address == "2001:db8::1"  # defaults to the host
    assert west.docker_socket == "/var/run/docker.sock"
    assert west.ssh_user is None and west.identity_file is None
    assert east.link_from == "198.18.1.1,198.18.2.0/24"
    assert west.link_from is None  # opt-in: no from= on the keys for links from west-1
    assert config.known_hosts == tmp_path / "known_hosts"  # relative to the file
    assert config.connect_timeout_s == 2.0
    assert config.clusters["west"].read_only and not config.clusters["east"].read_only
    assert config.nodes_of("west") == (west,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            VALID.replace('address = "198.18.1.10"\n', ""),
            "nodes[0] (east-1).address: expected a string (required field), got nothing",
            id="missing-field",
        ),
        pytest.param(
            VALID.replace('address = "198.18.1.10"', "address = 42"),
            "nodes[0] (east-1).address: expected a non-empty string, got integer 42",
            id="wrong-type",
        ),
        pytest.param(
            VALID.replace('name = "west-1"', 'name = "east-1"'),
            "nodes[1] (east-1).name: duplicate node name, also nodes[0]",
            id="duplicate-node",
        ),
        pytest.param(
            VALID.replace('cluster = "west"', 'cluster = "north"'),
            "nodes[1] (west-1).cluster: unknown cluster 'north' (declared: east, west)",
            id="unknown-cluster",
        ),
        pytest.param(
            VALID.replace("read_only = true", 'read_only = "yes"'),
            "clusters.west.read_only: expected true or false, got string 'yes'",
            id="wrong-boolean",
        ),
        pytest.param(
            VALID.replace('ssh_user = "root"', 'ssh_usr = "root"'),
            "nodes[0] (east-1).ssh_usr: unknown field",
            id="unknown-field",
        ),
        pytest.param(
            VALID.replace(":2222", ":99999"),
            "nodes[1] (west-1).address: expected host[:port] with a port from 1 to 65535",
            id="bad-port",
        ),
        pytest.param(
            VALID.replace('docker_socket = "/run/docker.sock"', 'docker_socket = "run/d.sock"'),
            "nodes[0] (east-1).docker_socket: expected an absolute path on the node",
            id="relative-socket",
        ),
        pytest.param(
            VALID.replace('connect_timeout = "2s"', 'connect_timeout = "2 parsecs"'),
            "ssh.connect_timeout: unknown unit 'parsecs'",
            id="bad-duration",
        ),
        pytest.param(
            "[clusters.east]\n", "nodes: expected at least one [[nodes]] entry", id="no-nodes"
        ),
        pytest.param("[[nodes]\nname=", "not valid TOML", id="malformed-toml"),
        pytest.param(
            VALID.replace('name = "west-1"', 'name = "west-1; rm -rf /"'),
            "nodes[1].name: expected a name of letters, digits",
            id="hostile-name",
        ),
        *(
            pytest.param(
                VALID.replace('link_from = "198.18.1.1,198.18.2.0/24"', f"link_from = {value}"),
                "nodes[0] (east-1).link_from: expected addresses, CIDR blocks or host names",
                id=f"link-from-{name}",
            )
            for name, value in [
                ("quote", r'"198.18.1.1\",command=\"sh"'),
                ("space", '"198.18.1.1 10.0.0.1"'),
                ("newline", r'"198.18.1.1\n"'),
                ("negation", '"!198.18.1.1"'),
                ("empty-entry", '"198.18.1.1,,10.0.0.1"'),
                ("bad-cidr", '"198.18.1.1/40"'),
                ("wildcard-cidr", '"198.18.*.0/24"'),
            ]
        ),
        pytest.param(
            VALID.replace('link_from = "198.18.1.1,198.18.2.0/24"', 'link_from = ""'),
            "nodes[0] (east-1).link_from: expected a non-empty string",
            id="link-from-empty",
        ),
        pytest.param(
            VALID.replace('link_from = "198.18.1.1,198.18.2.0/24"', 'become = "su"'),
            'nodes[0] (east-1).become: expected "sudo"',
            id="become-not-sudo",
        ),
    ],
)
def test_each_bad_config_gives_one_line_naming_file_and_field_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert str(excinfo.value).startswith(f"{path}: ")
    assert expected in str(excinfo.value)

    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and str(path) in err


@pytest.mark.parametrize(
    "pattern", ["198.18.*.1", "2001:db8::/32,fe80::1", "*.example.com,node-?.lan", "10.0.0.0/8"]
)
def test_link_from_takes_an_openssh_pattern_list(tmp_path: Path, pattern: str) -> None:
    text = VALID.replace('"198.18.1.1,198.18.2.0/24"', f'"{pattern}"')
    assert load_config(write(tmp_path, text)).nodes[0].link_from == pattern


def test_a_missing_config_file_says_where_it_looked_and_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml: no config file .*whimbrel lab up"):
        load_config(tmp_path / "nowhere.toml")


def test_config_path_prefers_flag_then_environment_then_xdg(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert default_config_path(env) == tmp_path / "xdg" / "whimbrel" / "config.toml"
    env["WHIMBREL_CONFIG"] = str(tmp_path / "env.toml")
    assert resolve_config_path(None, env) == tmp_path / "env.toml"
    assert resolve_config_path(str(tmp_path / "flag.toml"), env) == tmp_path / "flag.toml"


def test_config_check_prints_the_resolved_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(write(tmp_path, VALID)), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "east-1" in out and "198.19.1.10" in out and "west (read-only)" in out
