"""Hooks: read from the config, chosen per migration (clusters, then the container's label,
which only names them), run as an argv with the migration in their environment, retried where
the container's place is decided, killed at their timeout."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from whimbrel.app.cli import main
from whimbrel.backends.config import Config, ConfigError, Hook, parse_config
from whimbrel.backends.errors import UsageError
from whimbrel.backends.hooks import HookRun, MigrationHooks, hook_env, run_hook, select_hooks

NODES = [
    {"name": "e1", "cluster": "east", "address": "10.0.0.1", "wan_address": "192.0.2.1"},
    {"name": "w1", "cluster": "west", "address": "10.0.1.1"},
]


def config(hooks: dict, east: dict | None = None, west: dict | None = None) -> Config:
    data = {"clusters": {"east": east or {}, "west": west or {}}, "nodes": NODES, "hooks": hooks}
    return parse_config(data, Path("/etc/whimbrel.toml"))


def script(tmp_path: Path, body: str) -> tuple[str, ...]:
    path = tmp_path / "hook.py"
    path.write_text(textwrap.dedent(body))
    return (sys.executable, str(path))


def test_hooks_are_read_as_argv_per_event_with_timeout_and_attempts() -> None:
    cfg = config(
        {"lb": {"commit": ["/bin/lb", "point"], "abort": ["/bin/lb", "back"], "timeout": "3s"}},
        west={"hooks": ["lb"]},
    )
    assert cfg.hooks["lb"] == Hook(
        "lb", {"commit": ("/bin/lb", "point"), "abort": ("/bin/lb", "back")}, 3.0, 3
    )
    assert cfg.clusters["west"].hooks == ("lb",)


@pytest.mark.parametrize(
    ("hooks", "clusters", "said"),
    [
        ({"lb": {"commit": "/bin/lb point; rm -rf /"}}, {}, "hooks.lb.commit: expected a program"),
        ({"lb": {"commit": []}}, {}, "hooks.lb.commit: expected a program"),
        ({"lb": {"timeout": "3s"}}, {}, "hooks.lb: expected at least one of before_freeze"),
        ({"lb": {"commit": ["x"], "attempts": 0}}, {}, "hooks.lb.attempts: expected an integer"),
        ({"lb": {"commit": ["x"], "on_freeze": ["x"]}}, {}, "hooks.lb.on_freeze: unknown field"),
        ({}, {"hooks": ["lb"]}, "clusters.east.hooks: no [hooks.lb] table (hooks: none)"),
        ({}, {"hooks": "lb"}, "clusters.east.hooks: expected an array of hook names"),
    ],
)
def test_a_malformed_hook_or_an_unknown_name_is_refused_naming_the_field(
    hooks: dict, clusters: dict, said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(hooks, east=clusters)
    assert said in str(caught.value)
    assert str(caught.value).startswith("/etc/whimbrel.toml: ")


def test_a_migration_runs_its_clusters_hooks_then_its_labels_each_once() -> None:
    cfg = config(
        {n: {"commit": ["/bin/true", n]} for n in ("dns", "lb", "vip")},
        east={"hooks": ["lb"]},
        west={"hooks": ["dns", "lb"]},
    )
    src, dst = cfg.node("e1"), cfg.node("w1")
    chosen = select_hooks(cfg, src, dst, {"whimbrel.hooks": " vip , lb,"})
    assert [h.name for h in chosen] == ["lb", "dns", "vip"]
    assert select_hooks(cfg, src, dst, {}) == (cfg.hooks["lb"], cfg.hooks["dns"])


def test_a_label_can_only_name_configured_hooks_never_carry_a_command() -> None:
    cfg = config({"lb": {"commit": ["/bin/lb"]}})
    src, dst = cfg.node("e1"), cfg.node("w1")
    with pytest.raises(UsageError, match=r"names no hook of .*'/bin/sh -c reboot'.*hooks: lb"):
        select_hooks(cfg, src, dst, {"whimbrel.hooks": "/bin/sh -c reboot"})


def test_a_hook_whose_program_is_missing_is_refused_before_anything_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config({"lb": {"before_freeze": ["/bin/true"], "commit": ["/opt/lb/repoint"]}})
    with pytest.raises(UsageError, match=r"hooks.lb.commit: /opt/lb/repoint: no such executable"):
        select_hooks(cfg, cfg.node("e1"), cfg.node("w1"), {"whimbrel.hooks": "lb"})
    path = tmp_path / "config.toml"
    path.write_text(
        '[clusters.east]\nhooks = ["lb"]\n[clusters.west]\n[[nodes]]\nname = "e1"\n'
        'cluster = "east"\naddress = "10.0.0.1"\n'
        '[hooks.lb]\ncommit = ["/opt/lb/repoint"]\n[hooks.dns]\ncommit = ["true"]\n'
    )
    assert main(["--config", str(path), "config", "check"]) == 1
    out = capsys.readouterr().out
    assert "hook lb: commit; for east: hooks.lb.commit: /opt/lb/repoint: no such" in out
    assert "hook dns: commit; for container labels only: ok" in out


def test_a_hook_runs_without_a_shell_with_the_migration_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("WHIMBREL_")]:
        monkeypatch.delenv(name)  # whimbrel's own (a config path) would reach the hook too
    cfg = config({})
    out = tmp_path / "seen.json"
    argv = script(
        tmp_path,
        f"""
        import json, os, sys
        seen = {{k: v for k, v in os.environ.items() if k.startswith("WHIMBREL_")}}
        json.dump({{"env": seen, "argv": sys.argv[1:]}}, open({str(out)!r}, "w"))
        """,
    )
    hook = Hook("lb", {"commit": (*argv, "a; touch /tmp/never", "$HOME")})
    env = hook_env("m-1", "kv", cfg.node("e1"), cfg.node("w1"))
    run = asyncio.run(run_hook(hook, "commit", env))
    assert run.ok and run.attempts == 1, run.error
    seen = json.loads(out.read_text())
    assert seen["argv"] == ["a; touch /tmp/never", "$HOME"]
    assert seen["env"] == {
        "WHIMBREL_HOOK_EVENT": "commit",
        "WHIMBREL_MIGRATION": "m-1",
        "WHIMBREL_CONTAINER": "kv",
        "WHIMBREL_SOURCE_NODE": "e1",
        "WHIMBREL_SOURCE_CLUSTER": "east",
        "WHIMBREL_SOURCE_HOST": "10.0.0.1",
        "WHIMBREL_SOURCE_WAN_ADDRESS": "192.0.2.1",
        "WHIMBREL_TARGET_NODE": "w1",
        "WHIMBREL_TARGET_CLUSTER": "west",
        "WHIMBREL_TARGET_HOST": "10.0.1.1",
        "WHIMBREL_TARGET_WAN_ADDRESS": "10.0.1.1",
    }


def test_a_commit_hook_is_retried_until_it_succeeds_and_its_attempts_counted(
    tmp_path: Path,
) -> None:
    count = tmp_path / "count"
    argv = script(
        tmp_path,
        f"""
        import pathlib, sys
        count = pathlib.Path({str(count)!r})
        n = int(count.read_text()) + 1 if count.exists() else 1
        count.write_text(str(n))
        sys.exit(0 if n == 3 else "proxy busy")
        """,
    )
    run = asyncio.run(run_hook(Hook("lb", {"commit": argv}, attempts=3), "commit", {}))
    assert (run.ok, run.attempts) == (True, 3)
    assert run.summary().endswith("after 3 attempts")


def test_a_failing_before_freeze_hook_has_one_attempt_and_stops_the_hooks_after_it(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "second-ran"
    failing = Hook("lb", {"before_freeze": script(tmp_path, "import sys; sys.exit('no lb')")})
    second = Hook("dns", {"before_freeze": ("/usr/bin/touch", str(marker))})
    hooks = MigrationHooks((failing, second), {})
    [run] = asyncio.run(hooks.run("before_freeze"))
    assert (run.ok, run.attempts) == (False, 1)
    assert run.error is not None and "no lb (exit status 1)" in run.error
    assert not marker.exists() and hooks.ran("before_freeze")


def test_a_hook_past_its_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    argv = script(
        tmp_path,
        f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """,
    )
    hook = Hook("lb", {"commit": argv}, timeout_s=1.0, attempts=1)
    run = asyncio.run(run_hook(hook, "commit", {}))
    assert run.error is not None and "did not finish within 1 s" in run.error
    child = int(pidfile.read_text())
    try:
        os.kill(child, 0)
        state = Path(f"/proc/{child}/stat").read_text().split()[2]
        assert state == "Z", "the hook's child outlived its timeout"
    except ProcessLookupError:
        pass


def test_a_hook_that_cannot_start_says_why() -> None:
    hook = Hook("lb", {"abort": ("/nonexistent/lb",)}, attempts=1)
    run = asyncio.run(run_hook(hook, "abort", {}))
    assert run.error == "cannot run /nonexistent/lb: No such file or directory"


def test_the_hooks_share_of_the_clients_downtime_is_said_in_one_line() -> None:
    hooks = MigrationHooks((), {})
    assert hooks.inside_downtime() is None
    hooks.runs += [HookRun("lb", "before_freeze", 0.045, 1), HookRun("lb", "commit", 0.055, 1)]
    assert hooks.inside_downtime() == (
        "hooks inside the clients' downtime: 100 ms (before_freeze lb 45 ms, commit lb 55 ms)"
    )
