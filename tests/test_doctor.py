"""The doctor: its node helper's checks as shipped, run here, and its verdicts. (On real nodes,
broken on purpose: tests/lab/test_doctor.py.)"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.node_helpers import load, write
from whimbrel.app.commands.doctor import print_report
from whimbrel.backends.doctor import Check, NodeNotReady, NodeReport

doctor = load("doctor")


def _report(*checks: Check) -> NodeReport:
    return NodeReport("east-1", "east", checks)


def test_a_node_is_ready_when_every_required_check_passes_whatever_the_warnings() -> None:
    report = _report(
        Check("criu", True, "CRIU 4.2.1"),
        Check("soft-dirty", False, "no soft-dirty", "a kernel with it", required=False),
    )
    assert report.ready
    assert [c.name for c in report.warnings] == ["soft-dirty"]
    assert not report.failed


def test_a_failed_required_check_makes_the_node_unready_and_the_refusal_quotes_it() -> None:
    report = _report(
        Check("experimental", False, "off", 'add "experimental": true'),
        Check("criu", False, "no criu on PATH", "install CRIU 4.2"),
    )
    assert not report.ready
    message = str(NodeNotReady(report))
    assert message.startswith("east-1 is not ready for migrations: experimental: off")
    assert 'add "experimental": true' in message
    assert "(and 1 more)" in message
    assert "whimbrel doctor east-1" in message


def test_the_text_report_names_each_failure_with_its_remedy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_report(
        _report(
            Check("ssh", True, "198.18.1.10 as root, host key verified"),
            Check("network-lock", False, "no iptables-restore on PATH", "install iptables"),
        )
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "east-1 (east): NOT READY (1 to fix)"
    assert out[1].split()[:2] == ["ok", "ssh"]
    assert out[2].split()[:2] == ["FAIL", "network-lock"]
    assert out[3].strip() == "-> install iptables"


def test_an_engine_that_does_not_answer_fails_with_where_it_was_asked(tmp_path: Path) -> None:
    checks, info = doctor.engine(str(tmp_path / "docker.sock"))
    assert info is None
    [found] = checks
    assert found["name"] == "docker" and not found["ok"] and found["required"]
    assert str(tmp_path / "docker.sock") in found["detail"]
    assert "docker_socket" in found["remedy"]


def test_criu_missing_from_path_is_named_with_the_version_wanted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    checks, path = doctor.criu()
    assert path is None
    assert checks[0]["detail"] == "no criu on PATH"
    assert "4.2" in checks[0]["remedy"]


def test_criu_older_than_4_2_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "criu"
    fake.write_text("#!/bin/sh\necho 'Version: 3.17.1'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    checks, _ = doctor.criu()
    assert not checks[0]["ok"]
    assert checks[0]["detail"].startswith("CRIU 3.17.1")


def test_engine_settings_read_from_its_info() -> None:
    off = doctor.cgroups({"CgroupVersion": "2", "CgroupDriver": "systemd"})
    assert off["ok"] and off["detail"] == "cgroup v2, systemd driver"
    crun = doctor.runc({"info": {"DefaultRuntime": "crun"}, "version": {}, "running": []})
    assert not crun["ok"] and "default-runtime" in crun["remedy"]


def test_a_data_root_on_a_private_mount_is_named_with_make_rshared(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "27 1 253:1 / / rw,relatime - ext4 /dev/vda rw\n"
        "50 27 253:1 /srv/a /srv/a rw shared:6 - ext4 /dev/vda rw\n"
        "51 27 253:1 /srv/b /srv/b rw - ext4 /dev/vda rw\n"
        "52 50 253:1 /srv/a/x /srv/a/my\\040root rw master:3 - ext4 /dev/vda rw\n"
    )
    assert doctor.mount_of("/srv/a/docker", str(mountinfo)) == ("/srv/a", ["shared:6"])
    assert doctor.mount_of("/srv/a/my root/d", str(mountinfo)) == ("/srv/a/my root", ["master:3"])
    assert doctor.mount_of("/srv/b/docker", str(mountinfo)) == ("/srv/b", [])
    assert doctor.mount_of("/srv/abc", str(mountinfo)) == ("/", [])
    found = doctor.mount_propagation({"DockerRootDir": "/"})
    assert found["name"] == "mount-propagation" and not found["required"]
    assert found["ok"] or "make-rshared" in found["remedy"]


def test_authorized_keys_that_cannot_take_a_key_fail(tmp_path: Path) -> None:
    assert doctor.authorized_keys(str(tmp_path / "authorized_keys"))["ok"]  # created on use
    assert not doctor.authorized_keys(str(tmp_path / "missing" / "authorized_keys"))["ok"]
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "authorized_keys").mkdir()  # not a file
    assert not doctor.authorized_keys(str(folder / "authorized_keys"))["ok"]


def test_a_peer_is_reachable_only_when_an_ssh_server_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(doctor, "LINK_TIMEOUT_S", 0.3)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        silent = doctor.link("west-1", "127.0.0.1", port)  # accepts, says nothing
    assert not silent["ok"]
    closed = doctor.link("west-1", "127.0.0.1", port)  # nobody listens any more
    assert not closed["ok"] and "127.0.0.1" in closed["remedy"]


def test_the_helper_runs_as_shipped_and_answers_one_json_line(tmp_path: Path) -> None:
    script = write("doctor", tmp_path)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "none.sock"), str(tmp_path / "ak"), "[]"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert not checks["docker"]["ok"]
    assert checks["authorized-keys"]["ok"]
    assert set(checks["docker"]) == {"name", "ok", "required", "detail", "remedy"}
