"""A compromised source node is not root on the target: what it sends is written only under
the receiver's own directories, and nothing is ever written or read through a link it planted.

The receiver is run here on streams crafted as a hostile source would craft them, against a
scratch "container" directory beside a scratch "host" directory whose checksum must not move.
(Root is needed, as on a node: owners, whiteouts.)"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.node_helpers import load

ROOT = Path(__file__).parents[1]


receiver = load("receiver")


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Files outside the container that a hostile stream aims at."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "shadow").write_text("root:secret\n")
    (host / "bin").mkdir()
    (host / "bin" / "sh").write_bytes(b"\x7fELF real shell")
    return host


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    upper = tmp_path / "upper"
    upper.mkdir()
    return upper


def _checksum(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _unpack(data: bytes, into: Path, reserved: str | None = ".wb") -> None:
    with receiver.Dir(str(into)) as root:
        receiver.extract(io.BufferedReader(io.BytesIO(data)), root, reserved)


def _refused(host: Path, attempt: Callable[[], None], match: str) -> None:
    before = _checksum(host)
    with pytest.raises((ValueError, OSError), match=match):
        attempt()
    assert _checksum(host) == before


def test_an_absolute_name_in_the_layer_is_refused(host: Path, upper: Path) -> None:
    data = _tar((_member(f"{host}/shadow"), b"root::0:\n"))
    _refused(host, lambda: _unpack(data, upper), "absolute")


def test_a_name_climbing_out_with_dot_dot_is_refused(host: Path, upper: Path) -> None:
    data = _tar((_member("../host/shadow"), b"root::0:\n"))
    _refused(host, lambda: _unpack(data, upper), "climbs out")


def test_a_write_through_a_symlink_the_layer_planted_is_refused(host: Path, upper: Path) -> None:
    data = _tar(
        (_member("etc", tarfile.SYMTYPE, linkname=str(host)), None),
        (_member("etc/shadow"), b"root::0:\n"),
    )
    _refused(host, lambda: _unpack(data, upper), "Too many levels of symbolic links|Not a dir")


def test_a_file_over_a_planted_symlink_replaces_the_link_not_its_target(
    host: Path, upper: Path
) -> None:
    data = _tar(
        (_member("sh", tarfile.SYMTYPE, linkname=str(host / "bin" / "sh")), None),
        (_member("sh"), b"the container's own sh"),
    )
    before = _checksum(host)
    _unpack(data, upper)
    assert (upper / "sh").read_bytes() == b"the container's own sh"
    assert not (upper / "sh").is_symlink()
    assert _checksum(host) == before


@pytest.mark.parametrize("link", ["/HOST/shadow", "../host/shadow"])
def test_a_hard_link_out_of_the_tree_is_refused(host: Path, upper: Path, link: str) -> None:
    data = _tar((_member("x", tarfile.LNKTYPE, linkname=link.replace("/HOST", str(host))), None))
    _refused(host, lambda: _unpack(data, upper), "absolute|climbs out")


def test_a_hard_link_through_a_planted_symlink_is_refused(host: Path, upper: Path) -> None:
    data = _tar(
        (_member("h", tarfile.SYMTYPE, linkname=str(host)), None),
        (_member("x", tarfile.LNKTYPE, linkname="h/shadow"), None),
    )
    _refused(host, lambda: _unpack(data, upper), "Too many levels|Not a dir|non-file")


def test_an_entry_in_the_staging_dir_is_refused(host: Path, upper: Path) -> None:
    data = _tar((_member(".wb", tarfile.SYMTYPE, linkname=str(host)), None))
    _refused(host, lambda: _unpack(data, upper), "staging")


@pytest.mark.parametrize(("major", "minor"), [(1, 3), (8, 0)])
def test_a_device_node_is_refused(host: Path, upper: Path, major: int, minor: int) -> None:
    device = _member("disk", tarfile.BLKTYPE if major == 8 else tarfile.CHRTYPE)
    device.devmajor, device.devminor = major, minor
    _refused(host, lambda: _unpack(_tar((device, None)), upper), "device")


def test_a_real_layer_unpacks_whole_with_whiteouts_owners_and_opaque_dirs(
    tmp_path: Path, upper: Path
) -> None:
    # As the source packs it: GNU tar with overlayfs's xattrs.
    layer = tmp_path / "layer"
    (layer / "etc" / "app").mkdir(parents=True)
    (layer / "etc" / "app" / "conf").write_text("x = 1\n")
    os.chown(layer / "etc" / "app" / "conf", 1000, 1001)
    os.chmod(layer / "etc" / "app" / "conf", 0o640)
    os.link(layer / "etc" / "app" / "conf", layer / "etc" / "conf.hard")
    os.symlink("/etc/app/conf", layer / "etc" / "conf.link")
    os.mknod(layer / "etc" / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    os.setxattr(layer / "etc" / "app", "trusted.overlay.opaque", b"y")
    packed = subprocess.run(
        ["tar", "-C", str(layer), "--xattrs", "--xattrs-include=trusted.*", "-cpf", "-", "."],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    _unpack(packed, upper)
    conf = upper / "etc" / "app" / "conf"
    assert conf.read_text() == "x = 1\n"
    assert (conf.stat().st_uid, conf.stat().st_gid, conf.stat().st_mode & 0o777) == (
        1000,
        1001,
        0o640,
    )
    assert (upper / "etc" / "conf.hard").stat().st_ino == conf.stat().st_ino
    assert os.readlink(upper / "etc" / "conf.link") == "/etc/app/conf"
    assert os.stat(upper / "etc" / "gone").st_rdev == os.makedev(0, 0)
    assert os.getxattr(upper / "etc" / "app", "trusted.overlay.opaque") == b"y"


def _page_stream(name: str, data: bytes) -> io.BytesIO:
    """One round's stream holding one page file, as send_images writes it."""
    raw = io.BytesIO()
    raw.write(len(header := f'{{"name": "{name}"}}'.encode()).to_bytes(4, "big") + header)
    raw.write(b"D" + len(data).to_bytes(8, "big") + data + b"E")
    raw.write((0).to_bytes(4, "big"))
    return raw


class _Plain:
    """A stream read whole, as Joined reads a striped one."""

    def __init__(self, raw: io.BytesIO) -> None:
        self.raw = io.BytesIO(raw.getvalue())

    def read(self, n: int) -> bytes:
        return self.raw.read(n)

    def finish(self) -> None:
        assert self.raw.read(1) == b""


def test_a_page_file_written_over_a_planted_link_replaces_the_link(host: Path, upper: Path) -> None:
    staging = upper / ".wb"
    staging.mkdir()
    os.symlink(host / "shadow", staging / "pages-1.img")
    os.link(host / "bin" / "sh", staging / "pages-2.img")
    before = _checksum(host)
    for name in ("pages-1.img", "pages-2.img"):
        with receiver.Dir(str(staging)) as into:
            receiver._receive(_Plain(_page_stream(name, b"P" * 4096)), {}, None, into, into, False)
        assert (staging / name).read_bytes() == b"P" * 4096
    assert _checksum(host) == before


def test_a_copy_from_last_round_refuses_a_planted_link_to_a_host_file(
    host: Path, upper: Path
) -> None:
    # The copy op reads from last round's files: one that is a link to a host file would
    # carry the host's secrets into the container's memory.
    prev, out = upper / ".wb" / "round-0", upper / ".wb" / "round-1"
    prev.mkdir(parents=True)
    out.mkdir()
    os.symlink(host / "shadow", prev / "pages-1.img")
    raw = io.BytesIO()
    raw.write(len(header := b'{"name": "pages-1.img"}').to_bytes(4, "big") + header)
    name = b"pages-1.img"
    raw.write(b"P" + len(name).to_bytes(2, "big") + name + (0).to_bytes(8, "big"))
    raw.write((12).to_bytes(8, "big") + b"E" + (0).to_bytes(4, "big"))
    with (
        receiver.Dir(str(prev)) as before,
        receiver.Dir(str(out)) as into,
        pytest.raises(OSError, match="Too many levels of symbolic links"),
    ):
        receiver._receive(_Plain(raw), {}, before, into, into, False)
    assert b"secret" not in b"".join(p.read_bytes() for p in out.iterdir())


@pytest.mark.parametrize("name", ["../x", ".wb", "a/b", ""])
def test_a_bad_file_name_in_a_round_is_refused(upper: Path, name: str) -> None:
    with receiver.Dir(str(upper)) as into, pytest.raises(ValueError, match="bad file name"):
        receiver._receive(_Plain(_page_stream(name, b"x")), {}, None, into, into, False)


IMAGE_ID = "sha256:" + "ab" * 32


def _image_archive(tmp_path: Path, manifest: object, repositories: dict | None = None) -> Path:
    """A `docker save` archive's naming files (the layers do not matter to the check)."""
    files = [("manifest.json", manifest)] + (
        [("repositories", repositories)] if repositories else []
    )
    path = tmp_path / "image.tar"
    path.write_bytes(_tar(*((_member(n), json.dumps(v).encode()) for n, v in files)))
    return path


def test_the_image_the_operator_named_is_let_through(tmp_path: Path) -> None:
    manifest = [{"Config": "ab" * 32 + ".json", "RepoTags": ["wb-redis:latest"], "Layers": []}]
    receiver.check_image_archive(_image_archive(tmp_path, manifest), IMAGE_ID, "wb-redis")


@pytest.mark.parametrize(
    ("manifest", "repositories", "match"),
    [
        ([{"Config": "ab" * 32 + ".json", "RepoTags": ["wb-redis:latest", "nginx:latest"]}],
         None, "not asked for"),
        ([{"Config": "ab" * 32 + ".json", "RepoTags": ["wb-redis:latest"]}],
         {"postgres": {"15": "cd" * 32}}, "not asked for"),
        ([{"Config": "cd" * 32 + ".json", "RepoTags": ["wb-redis:latest"]}], None, "not the one"),
        ([{"Config": "ab" * 32 + ".json", "RepoTags": []}] * 2, None, "exactly one"),
    ],
    ids=["retags-another-image", "legacy-retag", "another-image", "two-images"],
)  # fmt: skip
def test_an_image_archive_retagging_or_swapping_images_is_refused(
    tmp_path: Path, manifest: object, repositories: dict | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        receiver.check_image_archive(
            _image_archive(tmp_path, manifest, repositories), IMAGE_ID, "wb-redis:latest"
        )
