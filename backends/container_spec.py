"""The source container as the target recreates it, and what whimbrel refuses to move."""

from __future__ import annotations

from typing import Any

from whimbrel.backends.errors import UsageError

# Docker create fields reproduced on the target, from `docker inspect` of the source.
_CONFIG_KEYS = (
    "Hostname",
    "Domainname",
    "User",
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "Labels",
    "ExposedPorts",
    "StopSignal",
    "StopTimeout",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Volumes",
    "Healthcheck",
)
_HOST_KEYS = (
    "Binds",
    "NetworkMode",
    "RestartPolicy",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "CpusetCpus",
    "PidsLimit",
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "Tmpfs",
    "ShmSize",
    "PortBindings",
    "ExtraHosts",
    "Ulimits",
    "LogConfig",
    "Init",
    "ReadonlyRootfs",
    "Mounts",
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "Sysctls",
    "Privileged",
)


def create_body(inspect: dict[str, Any]) -> dict[str, Any]:
    config, host = inspect["Config"], inspect["HostConfig"]
    body = {k: config[k] for k in _CONFIG_KEYS if config.get(k) is not None}
    body["Image"] = config["Image"]
    body["HostConfig"] = {k: host[k] for k in _HOST_KEYS if host.get(k) is not None}
    return body


def refuse_unmovable(inspect: dict[str, Any]) -> None:
    """What whimbrel does not move yet is refused before anything is touched."""
    name = inspect["Name"].lstrip("/")
    for mount in inspect.get("Mounts") or ():
        if mount.get("Type") == "bind":
            raise UsageError(
                f"{name}: bind mount {mount.get('Source')} -> {mount.get('Destination')}: "
                "whimbrel does not move bind-mounted host data yet; use a named volume"
            )
    mode = (inspect.get("HostConfig") or {}).get("NetworkMode", "")
    if mode.startswith("container:"):
        raise UsageError(f"{name}: shares another container's network ({mode}); move that one")
    if not (inspect.get("State") or {}).get("Running"):
        raise UsageError(f"{name}: not running (only running containers are live-migrated)")
