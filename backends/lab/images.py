"""The lab's workload images, built without a registry: root file systems made of this host's
binaries and their libraries (as `ldd` lists them), imported with `docker import`.

- `whimbrel-lab/redis:7`: Debian's redis-server with its libraries;
- `whimbrel-lab/memwriter:1`: the static memwriter (memwriter.c beside this file).
Both carry busybox, so `docker exec NAME sh` works and the engine has basic tools inside.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from whimbrel.backends.lab.system import LabError, docker, run

REDIS_IMAGE = "whimbrel-lab/redis:7"
MEMWRITER_IMAGE = "whimbrel-lab/memwriter:1"
BUSYBOX = Path("/bin/busybox")
REDIS_SERVER = Path("/usr/bin/redis-server")
REDIS_CONF = "/etc/redis.conf"
BUSYBOX_APPLETS = (
    "sh",
    "ls",
    "cat",
    "mkdir",
    "rm",
    "ln",
    "cp",
    "mv",
    "sleep",
    "ps",
    "du",
    "df",
    "head",
    "dd",
    "sha256sum",
    "echo",
    "touch",
    "sync",
    "wc",
)


@dataclass(frozen=True)
class ImageSpec:
    tag: str
    tar: bytes
    changes: tuple[str, ...]


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries `ldd` resolves for a dynamic binary, the loader included."""
    out = run(["ldd", binary], check=False).stdout.decode()
    libs = []
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            libs.append(Path(match.group(1)))
    return libs


def _add_file(tar: tarfile.TarFile, src: Path, dest: str) -> None:
    _add_bytes(tar, dest, src.read_bytes(), 0o755)


def _add_dir(tar: tarfile.TarFile, dest: str) -> None:
    info = tarfile.TarInfo(dest.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = 0o755 if dest != "/tmp" else 0o1777
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, dest: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(dest.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _rootfs(files: dict[str, Path], texts: dict[str, str] | None = None) -> bytes:
    """A root file system: the given files and texts, busybox with a few applets, /etc basics."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = {"/bin", "/etc", "/tmp", "/data", "/proc", "/sys", "/dev"}
        for dest in files:
            parts = Path(dest).parents
            dirs.update(str(p) for p in parts if str(p) != "/")
        for d in sorted(dirs):
            _add_dir(tar, d)
        for dest, src in files.items():
            _add_file(tar, src, dest)
        _add_file(tar, BUSYBOX, "/bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        _add_bytes(tar, "/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        _add_bytes(tar, "/etc/group", b"root:x:0:\n", 0o644)
        for dest, text in (texts or {}).items():
            _add_bytes(tar, dest, text.encode(), 0o644)
    return buf.getvalue()


def redis_image() -> ImageSpec:
    if not REDIS_SERVER.exists():
        raise LabError(f"{REDIS_SERVER} missing: run `make setup` as root")
    files = {str(REDIS_SERVER): REDIS_SERVER}
    for lib in shared_libraries(REDIS_SERVER):
        files[str(lib)] = lib.resolve()
    # Defaults live in a file, so `redis-server /etc/redis.conf --port N` keeps them.
    conf = 'bind 0.0.0.0\nprotected-mode no\nsave ""\nappendonly no\ndir /data\n'
    cmd = ["redis-server", REDIS_CONF]
    return ImageSpec(
        REDIS_IMAGE,
        _rootfs(files, {REDIS_CONF: conf}),
        (f"CMD {json.dumps(cmd)}", "WORKDIR /data"),
    )


def build_memwriter(out: Path) -> Path:
    source = resources.files("whimbrel.backends.lab").joinpath("memwriter.c")
    with resources.as_file(source) as src:
        run(["gcc", "-O2", "-static", "-o", out, src], timeout=120)
    return out


def memwriter_image(build_dir: Path) -> ImageSpec:
    binary = build_memwriter(build_dir / "memwriter")
    cmd = ["memwriter", "--size", "64MiB", "--rate", "1MiB/s", "--port", "7070"]
    return ImageSpec(
        MEMWRITER_IMAGE, _rootfs({"/bin/memwriter": binary}), (f"CMD {json.dumps(cmd)}",)
    )


def import_image(docker_host: str, image: ImageSpec) -> None:
    changes = [arg for change in image.changes for arg in ("--change", change)]
    docker(docker_host, "import", *changes, "-", image.tag, input=image.tar)
