"""A compromised source node, over a real link: streams crafted as it would craft them go from
east-1 through west-1's sshd, the link key's forced command and the receiver, and each is
refused; no file outside the receiver's own directories changes.

The stream is encoded here, independently of source.py, from the receiver's side of the wire:
frames (4-byte length, 0 ends the stream), each file a JSON header then D(ata) chunks up to E.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import struct
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from whimbrel.backends.channel import NodeLink, open_link
from whimbrel.backends.config import load_config
from whimbrel.backends.ssh import SessionPool

pytestmark = pytest.mark.lab

# On west-1's file system (the lab's nodes share the host's): the container's writable layer
# the receiver is told to fill, and host files beside it that a hostile stream aims at.
SCRATCH = Path("/var/lib/wblab/hostile")
GUARDED = [Path("/etc/passwd"), Path("/etc/shadow"), Path("/root/.bashrc")]


@pytest.fixture
def scratch(lab: dict) -> Iterator[Path]:
    shutil.rmtree(SCRATCH, ignore_errors=True)
    (SCRATCH / "upper").mkdir(parents=True)
    host = SCRATCH / "host"
    (host / "bin").mkdir(parents=True)
    (host / "shadow").write_text("root:secret\n")
    (host / "bin" / "sh").write_bytes(b"\x7fELF the real shell")
    yield SCRATCH
    shutil.rmtree(SCRATCH, ignore_errors=True)


def _checksum() -> str:
    digest = hashlib.sha256()
    for path in [*sorted((SCRATCH / "host").rglob("*")), *GUARDED]:
        digest.update(str(path).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info


def _layer(*members: tarfile.TarInfo) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info in members:
            data = b"pwned\n" if info.type == tarfile.REGTYPE else None
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _round_stream(layer: bytes) -> bytes:
    """One pre-copy round carrying only the writable layer, as the receiver reads it."""
    header = json.dumps({"name": "@layer"}).encode()
    body = (
        struct.pack(">I", len(header)) + header
        + b"D" + struct.pack(">Q", len(layer)) + layer + b"E"
        + struct.pack(">I", 0)
    )  # fmt: skip
    return struct.pack(">I", len(body)) + body + struct.pack(">I", 0)


def _image_archive(image_id: str, tags: list[str]) -> bytes:
    raw = io.BytesIO()
    manifest = json.dumps([{"Config": f"{image_id}.json", "RepoTags": tags, "Layers": []}])
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest.encode()))
    return raw.getvalue()


HOSTILE_LAYERS = {
    "absolute name": [_member(str(SCRATCH / "host" / "shadow"))],
    "climbing out with ..": [_member("../host/shadow")],
    "write through a planted symlink": [
        _member("evil", tarfile.SYMTYPE, str(SCRATCH / "host")),
        _member("evil/shadow"),
    ],
    "hard link to a host file": [_member("stolen", tarfile.LNKTYPE, str(SCRATCH / "host/shadow"))],
    "hard link climbing out": [_member("stolen", tarfile.LNKTYPE, "../host/bin/sh")],
    "entry in the staging dir": [_member(".wb/round-0/pages-1.img")],
    "device node": [_member("mem", tarfile.CHRTYPE)],
}


def _send(link: NodeLink, action: str, stream: bytes) -> list[dict]:
    """What the source node east-1 gets back for `stream` sent on the link, as its ssh does."""
    done = subprocess.run(
        ["ip", "netns", "exec", "wb-east-1", *link.ssh_base(), action],
        input=stream, capture_output=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


async def _over_a_link(config_path: str, sends: list[tuple[str, bytes]]) -> list[list[dict]]:
    config = load_config(Path(config_path))
    async with SessionPool(config) as pool:
        src, dst = config.node("east-1"), config.node("west-1")
        async with open_link(pool, src, dst) as link:
            # What the operator tells the receiver (never the source): here, the scratch layer.
            where = {
                "upper_dir": str(SCRATCH / "upper"), "volumes": {}, "failpoints": {},
                "image": {"ref": "whimbrel-lab/redis:7", "id": "sha256:" + "a" * 64},
            }  # fmt: skip
            Path(link.dst_dir, "target.json").write_text(json.dumps(where))
            return [await asyncio.to_thread(_send, link, a, s) for a, s in sends]


def test_streams_a_compromised_source_crafts_are_refused_over_the_link(
    lab: dict, scratch: Path
) -> None:
    before = _checksum()
    hostile = {
        what: ("rounds 1 hostile", _round_stream(_layer(*members)))
        for what, members in HOSTILE_LAYERS.items()
    } | {
        "another image than the operator's": (
            "load-image", _image_archive("b" * 64, ["whimbrel-lab/redis:7"])
        ),
        "the operator's image retagging another name": (
            "load-image", _image_archive("a" * 64, ["whimbrel-lab/redis:7", "alpine:latest"])
        ),
    }  # fmt: skip
    answers = asyncio.run(_over_a_link(lab["config"], list(hostile.values())))
    for what, answer in zip(hostile, answers, strict=True):
        refused = [line["error"] for line in answer if "error" in line]
        landed = [line for line in answer if "round" in line or "loaded" in line]
        assert refused and not landed, (what, answer)
    assert _checksum() == before
    # Nothing landed in the layer either, but what the receiver itself made there.
    assert not (SCRATCH / "upper" / "evil").exists()
    assert not list((SCRATCH / "upper").glob("stolen")) and not (SCRATCH / "upper/mem").exists()


def test_a_well_formed_round_over_the_same_path_is_let_in(lab: dict, scratch: Path) -> None:
    # The refusals above are the receiver's doing, not a broken path: the same encoding with a
    # harmless layer lands.
    stream = _round_stream(_layer(_member("data", tarfile.DIRTYPE), _member("data/hello")))
    (answer,) = asyncio.run(_over_a_link(lab["config"], [("rounds 1 friendly", stream)]))
    assert [line.get("round") for line in answer] == [0], answer
    assert (SCRATCH / "upper" / "data" / "hello").read_text() == "pwned\n"
