"""`whimbrel config check|path`: validate the clusters config and show the resolved nodes."""

from __future__ import annotations

import argparse
import json

from whimbrel.app.output import print_table
from whimbrel.backends.config import Config, load_config, resolve_config_path
from whimbrel.backends.hooks import unrunnable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate and show the clusters config")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate the config and print the resolved nodes")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=run_check)
    path = sub.add_parser("path", help="print the config path in use")
    path.set_defaults(func=run_path)


def run_path(args: argparse.Namespace) -> int:
    print(resolve_config_path(args.config))
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Exit 1 when a hook's program cannot run on this host (the rest is checked on load)."""
    config = load_config(resolve_config_path(args.config))
    hooks = _hooks(config)
    if args.json:
        print(
            json.dumps(
                {
                    "config": str(config.path),
                    "known_hosts": str(config.known_hosts) if config.known_hosts else None,
                    "clusters": [
                        {"name": c.name, "read_only": c.read_only} for c in config.clusters.values()
                    ],
                    "nodes": [
                        {
                            "name": n.name,
                            "cluster": n.cluster,
                            "address": n.address,
                            "host": n.host,
                            "port": n.port,
                            "wan_address": n.wan_address,
                            "ssh_user": n.ssh_user,
                            "become": n.become,
                            "identity_file": str(n.identity_file) if n.identity_file else None,
                            "docker_socket": n.docker_socket,
                        }
                        for n in config.nodes
                    ],
                    "hooks": hooks,
                },
                indent=2,
            )
        )
        return 1 if any(h["problem"] for h in hooks) else 0
    print(f"config: {config.path} (ok)")
    print(f"known_hosts: {config.known_hosts or '~/.ssh/known_hosts (default)'}")
    header = ("NODE", "CLUSTER", "ADDRESS", "WAN ADDRESS", "USER", "DOCKER SOCKET")
    rows = [
        (
            n.name,
            n.cluster + (" (read-only)" if config.clusters[n.cluster].read_only else ""),
            n.address,
            n.wan_address,
            (n.ssh_user or "(ssh config)") + (f" ({n.become})" if n.become else ""),
            n.docker_socket,
        )
        for n in config.nodes
    ]
    print_table(header, rows)
    for hook in hooks:
        named_by = ", ".join(hook["clusters"]) or "container labels only"
        state = hook["problem"] or "ok"
        print(f"hook {hook['name']}: {', '.join(hook['events'])}; for {named_by}: {state}")
    return 1 if any(h["problem"] for h in hooks) else 0


def _hooks(config: Config) -> list[dict]:
    return [
        {
            "name": hook.name,
            "events": list(hook.argv),
            "clusters": [c.name for c in config.clusters.values() if hook.name in c.hooks],
            "problem": unrunnable(hook),
        }
        for hook in config.hooks.values()
    ]
