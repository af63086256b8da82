"""CRIU's record of what the kernel supports, kept for the lab's nodes as a real node keeps it.

Every CRIU run starts by probing the kernel (kerndat: a veth made and dropped, `iptables -L`,
and more: ~40 ms on this project's machines) unless /run/criu.kdat holds what an earlier run
found. CRIU writes that file only where /run is a tmpfs, as on any systemd host, so that a
reboot drops it with the kernel it describes. This machine's /run is not a tmpfs, so every CRIU
run of a migration probed again, three inside each hand-over's downtime (the final dump, the
lazy-pages daemon, the restore: 0.45 -> 0.35-0.40 s at 64 MiB once kept), which a real node
does not. So `up` has CRIU write its record in a mount namespace of its own with a tmpfs on
/run, and puts it where every CRIU on this host reads it; `down` removes it (here it would
outlive a reboot). Where /run is a tmpfs CRIU keeps its own, and the lab leaves it alone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

KDAT = Path("/run/criu.kdat")
# Has CRIU write its record to a private tmpfs on /run (unshare's mounts are private) and
# prints it.
_RECORD = "mount -t tmpfs -o size=1m,mode=755 whimbrel-kdat /run && criu check >/dev/null 2>&1; "
_RECORD += "cat /run/criu.kdat"


def keep_criu_record(kept: Path, kdat: Path = KDAT) -> str | None:
    """Write CRIU's record of the kernel to `kdat` and note in `kept` that the lab put it
    there; returns what happened (None where /run is a tmpfs: CRIU keeps its own)."""
    if _on_tmpfs(kdat.parent):
        return None
    try:
        record = subprocess.run(
            ["unshare", "-m", "sh", "-c", _RECORD], capture_output=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"CRIU probes the kernel at every run ({exc})"
    if not record:
        return "CRIU probes the kernel at every run (it wrote no record)"
    partial = kdat.with_name(kdat.name + ".whimbrel")
    partial.write_bytes(record)
    partial.chmod(0o600)
    os.replace(partial, kdat)
    kept.write_text(str(kdat))
    return f"CRIU's record of the kernel kept in {kdat} while the lab is up"


def drop_criu_record(kept: Path) -> None:
    """Remove the record keep_criu_record() put there, if it did."""
    try:
        kdat = Path(kept.read_text().strip())
    except FileNotFoundError:
        return
    kdat.unlink(missing_ok=True)
    kept.unlink()


def _on_tmpfs(path: Path) -> bool:
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    except OSError:
        return False
    return out.stdout.strip() == "tmpfs"
