"""Confined writes on the target (standard library only).

What the source sends is written as root into the target container's layer, its volumes and
the checkpoint dir, so every name is taken relative to a directory opened once, and no link is
ever followed: a hostile source can plant links, but never write or read through one (a link
is the container's own business, never the receiver's).
"""

import contextlib
import os
import shutil
import stat
import tarfile

STAGING = ".wb"
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Dir:
    """A directory by fd; every name in it is opened without following a link."""

    def __init__(self, path, dir_fd=None):
        self.fd = os.open(path, OPEN_DIR, dir_fd=dir_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def sub(self, name, create=False):
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad directory name {name[:80]!r}")
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=self.fd)
        return Dir(name, dir_fd=self.fd)

    def create(self, name):
        """A new regular file: whatever had the name goes first (a planted link or hard link
        is unlinked, never written through)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.fdopen(os.open(name, flags, 0o600, dir_fd=self.fd), "wb")

    def open(self, name, flags=os.O_RDONLY):
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_nlink != 1:
            os.close(fd)
            raise ValueError(f"{name}: not a file of this round's own")
        return os.fdopen(fd, "r+b" if flags & os.O_RDWR else "rb")

    def move(self, name, into):
        os.replace(name, name, src_dir_fd=self.fd, dst_dir_fd=into.fd)

    def symlink(self, target, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)
        os.symlink(target, name, dir_fd=self.fd)

    def remove_tree(self, name):
        """Remove an entry, a directory with all it holds, without following links."""
        info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=self.fd)
            return
        with Dir(name, dir_fd=self.fd) as sub:
            for entry in os.listdir(sub.fd):
                sub.remove_tree(entry)
        os.rmdir(name, dir_fd=self.fd)


# Extended attributes a layer may carry: overlayfs's own (opaque directories, redirects).
XATTR_PREFIX = "trusted.overlay."


def extract(reader, root, reserved=None):
    """Unpack the tar stream `reader` into the Dir `root`, refusing what would leave it: an
    absolute name or one with "..", an entry under `reserved`, a hard link to anything but a
    file unpacked here, a device (overlayfs's whiteouts, character devices 0:0, excepted).
    Owners and modes are kept (numeric); directories get theirs once their contents are in."""
    directories = []
    with tarfile.open(fileobj=reader, mode="r|") as archive:
        for member in archive:
            parts = _member_parts(member.name, reserved)
            if not parts:
                continue  # "." itself: the operator's dir keeps its own owner and mode
            with _walk(root, parts[:-1]) as parent:
                _place(archive, member, parent, parts[-1], root, reserved)
            if member.isdir():
                directories.append((parts, member))
    while reader.read(1 << 20):
        pass  # the archive's padding, up to the end of its stream
    for parts, member in reversed(directories):
        with _walk(root, parts) as directory:
            _attributes(member, directory.fd)


def _member_parts(name, reserved):
    if name.startswith("/") or "\0" in name:
        raise ValueError(f"tar: absolute or bad name {name[:80]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"tar: {name[:80]!r} climbs out")
    if parts and reserved is not None and parts[0] == reserved:
        raise ValueError(f"tar: {name[:80]!r} is in the staging dir")
    return parts


def _walk(root, parts):
    """The Dir at `parts` under root, every step opened without following a link."""
    current = Dir(".", dir_fd=root.fd)
    for part in parts:
        with current:
            current = Dir(part, dir_fd=current.fd)
    return current


def _place(archive, member, parent, name, root, reserved):
    fd = parent.fd
    if member.isdir():
        try:
            os.mkdir(name, 0o700, dir_fd=fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise ValueError(f"tar: {member.name[:80]!r} is not a directory here") from None
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)  # a later entry of the same name replaces it
    if member.isreg():
        with parent.create(name) as f:
            shutil.copyfileobj(archive.extractfile(member), f, 1 << 20)
            _attributes(member, f.fileno())
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=fd)
        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
    elif member.islnk():
        target = _member_parts(member.linkname, reserved)
        if not target:
            raise ValueError(f"tar: hard link {member.name[:80]!r} to the tree itself")
        with _walk(root, target[:-1]) as source:
            info = os.stat(target[-1], dir_fd=source.fd, follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"tar: hard link {member.name[:80]!r} to a non-file")
            os.link(target[-1], name, src_dir_fd=source.fd, dst_dir_fd=fd, follow_symlinks=False)
    elif member.ischr() and (member.devmajor, member.devminor) == (0, 0):
        os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=fd)  # a whiteout
        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
    elif member.isfifo():
        os.mkfifo(name, 0o600, dir_fd=fd)
        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
    else:
        raise ValueError(f"tar: {member.name[:80]!r}: a device or unknown kind, refused")


def _attributes(member, fd):
    """Owner, mode, times and overlayfs's xattrs of a file or directory, by its fd."""
    for key, value in member.pax_headers.items():
        name = key[len("SCHILY.xattr.") :]
        if key.startswith("SCHILY.xattr.") and name.startswith(XATTR_PREFIX):
            os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
    os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)
    os.utime(fd, (member.mtime, member.mtime))
