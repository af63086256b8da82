"""A lab node's daemons: its sshd and its dockerd, each started in the node's namespace on the
node's own directories, and stopped the way tests need (a service stop, or a kill)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from whimbrel.backends.lab.system import docker, kill_and_wait, read_pid, run, spawn, wait_for
from whimbrel.backends.lab.topology import LAB_DIR, SSH_PORT, LabNode

DOCKER_NEXT_BIN = Path("/usr/local/lib/whimbrel-docker-next/bin")


def _sshd_config(node: LabNode, path: str | None = None) -> str:
    # SHLVL=1: bash then takes the session's command as a nested shell's and leaves root's
    # ~/.bashrc alone. The nodes share this machine's /root, whose .bashrc (pyenv's init and
    # shims) cost every helper run 0.2 s of CPU that no real node's would.
    env = f"DOCKER_HOST={node.docker_host} TMPDIR={node.tmp_dir} SHLVL=1"
    root_keys = node.state_dir / "authorized_keys"
    if path is not None:
        env += f" PATH={path}"
    return "\n".join(
        [
            f"ListenAddress {node.lan_address}:{SSH_PORT}",
            f"ListenAddress 127.0.0.1:{SSH_PORT}",
            f"HostKey {node.state_dir / 'ssh_host_ed25519_key'}",
            f"PidFile {node.run_dir / 'sshd.pid'}",
            # The lab's key, and this node's own file for whimbrel's short-lived keys (the
            # nodes share one file system, so ~/.ssh would be shared by all of them).
            f"AuthorizedKeysFile {LAB_DIR / 'authorized_keys'} {root_keys}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PrintMotd no",
            "UseDNS no",
            # The node's docker CLI talks to the node's own engine, and its temp files stay
            # on the node's own directory (tests fill it to see a full disk handled); tests
            # give a node a PATH of its own to leave a tool off it.
            f"SetEnv {env}",
            "Subsystem sftp internal-sftp",
            # The sudo user's keys are in its own home (LAB_DIR is root's alone, and sshd
            # reads a user's keys as that user).
            *(
                [f"Match User {node.sudo_user}", f"    AuthorizedKeysFile {node.authorized_keys}"]
                if node.sudo_user
                else []
            ),
            "",
        ]
    )


def start_node(node: LabNode) -> None:
    """Give the node its host key and config, then start its sshd and its dockerd."""
    node.state_dir.mkdir(parents=True, exist_ok=True)
    node.run_dir.mkdir(parents=True, exist_ok=True)
    key = node.state_dir / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.name, "-f", key])
    node.tmp_dir.mkdir(mode=0o1777, exist_ok=True)
    (node.state_dir / "sshd_config").write_text(_sshd_config(node))
    start_sshd(node)
    (node.state_dir / "daemon.json").write_text("{}\n")
    start_dockerd(node)


def start_sshd(node: LabNode) -> None:
    """Start the node's sshd, listening when this returns; tests use it after stopping one.
    It daemonizes itself and its child writes the pid file once it listens: a stop right
    after a start read the stopped one's pid from the file and left the new one running."""
    pid_file = node.run_dir / "sshd.pid"
    pid_file.unlink(missing_ok=True)
    run(["/usr/sbin/sshd", "-f", node.state_dir / "sshd_config"], netns=node.netns)
    wait_for(lambda: read_pid(pid_file) is not None, f"{node.name}: sshd", timeout=10)


def restart_sshd(node: LabNode, path: str | None = None) -> None:
    """Restart the node's sshd, its sessions on `path` when given (else sshd's own PATH)."""
    (node.state_dir / "sshd_config").write_text(_sshd_config(node, path))
    stop_sshd(node)
    start_sshd(node)


def stop_sshd(node: LabNode) -> None:
    pid = read_pid(node.run_dir / "sshd.pid")
    if pid is not None:
        kill_and_wait([pid])


def start_dockerd(
    node: LabNode,
    data_root: Path | None = None,
    *,
    experimental: bool = True,
    next_engine: bool = False,
) -> None:
    """Start the node's dockerd, answering when this returns; tests restart one on another
    data root (`data_root`), without the experimental features checkpoints need, or on the
    next Debian suite's engine (`next_engine`: Docker 28, its containerd and runc first on
    its PATH; install-system.sh puts them in DOCKER_NEXT_BIN)."""
    root = data_root or node.state_dir / "docker"
    engine = ["/usr/sbin/dockerd"]
    if next_engine:
        path = f"{DOCKER_NEXT_BIN}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        engine = ["env", f"PATH={path}", f"{DOCKER_NEXT_BIN}/dockerd"]
        _shared_mount(root)
    spawn(
        [
            *engine,
            *(["--experimental"] if experimental else []),
            f"--config-file={node.state_dir / 'daemon.json'}",
            f"--data-root={root}",
            f"--exec-root={node.run_dir / 'dx'}",
            f"--pidfile={node.run_dir / 'dockerd.pid'}",
            f"--host={node.docker_host}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--storage-driver=overlay2",
        ],
        log=node.run_dir / "dockerd.log",
        netns=node.netns,
    )
    wait_for(lambda: _docker_answers(node), f"dockerd on {node.name}", timeout=60)


def _shared_mount(path: Path) -> None:
    """`path` a shared mount, as a real node's data root is: systemd makes / shared at boot,
    this machine's / is private, and Docker 28 (unlike 20.10) leaves its data root as it
    finds it. On a private one its containers' root mounts are private, and CRIU cannot
    restore there a container dumped under a shared one (a 20.10 node's): mount-v2 "Failed
    to copy sharing" (EINVAL). `whimbrel lab down` unmounts everything under the lab's
    directories."""
    path.mkdir(parents=True, exist_ok=True)
    if run(["mountpoint", "-q", path], check=False).returncode != 0:
        run(["mount", "--bind", path, path])
    run(["mount", "--make-rshared", path])


def stop_dockerd(node: LabNode, sig: signal.Signals = signal.SIGTERM) -> None:
    """Stop the node's dockerd as its service manager would (SIGTERM: it stops its containers
    and its containerd and unmounts what it mounted), or kill it (SIGKILL: all that stays)."""
    pid = read_pid(node.run_dir / "dockerd.pid")
    if pid is not None:
        kill_and_wait([pid], timeout=60, sig=sig)


def _docker_answers(node: LabNode) -> bool:
    if not node.docker_socket.exists():
        return False
    return docker(node.docker_host, "version", check=False).returncode == 0
