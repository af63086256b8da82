"""`whimbrel config check|path`: validate the clusters config and show the resolved nodes."""

from __future__ import annotations

import argparse
import json

from whimbrel.app.output import print_table
from whimbrel.backends.config import load_config, resolve_config_path


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
    config = load_config(resolve_config_path(args.config))
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
                },
                indent=2,
            )
        )
        return 0
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
    return 0
