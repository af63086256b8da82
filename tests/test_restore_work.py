"""What the target reads back from CRIU's restore work dir (backends/remote/restorework.py):
CRIU's own restore time and its last error, and whether a lazy-pages daemon still fills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.node_helpers import load

work = load("restorework")


def test_criu_restore_time_is_the_last_timestamp_of_its_log(tmp_path: Path) -> None:
    (tmp_path / "restore.log").write_text(
        "(00.000000) CRIU run id = 1\n"
        "(00.122299) \tRPC\n"
        "\tcontinued line without a stamp\n"
        "(00.204468) Restore finished successfully. Tasks resumed.\n"
    )
    assert work.criu_restore_s(str(tmp_path)) == 0.204468


def test_no_restore_log_gives_no_criu_time(tmp_path: Path) -> None:
    assert work.criu_restore_s(str(tmp_path)) is None
    (tmp_path / "restore.log").write_text("garbage\n")
    assert work.criu_restore_s(str(tmp_path)) is None


def test_criu_error_quotes_each_of_its_error_lines_in_order_else_the_fallback(
    tmp_path: Path,
) -> None:
    (tmp_path / "restore.log").write_text(
        "(00.01) Error (criu/a.c:1): first\n(00.02) Collected [libgpg-error.so.0] ID 0x2\n"
        "(00.03) Error (criu/b.c:2): last\n"
    )
    assert work.criu_error(str(tmp_path), "restore.log") == (
        "(00.01) Error (criu/a.c:1): first | (00.03) Error (criu/b.c:2): last"
    )
    (tmp_path / "many.log").write_text("".join(f"(00.0{i}) Error: e{i}\n" for i in range(9)))
    assert work.criu_error(str(tmp_path), "many.log").endswith("Error: e5 | (and 3 more)")
    assert work.criu_error(str(tmp_path), "absent.log", " exit 1\n") == "exit 1"


def test_a_pidfile_naming_another_process_is_no_lazy_daemon(tmp_path: Path) -> None:
    # A recycled pid must never pass for the daemon: its command line names lazy-pages and
    # this work dir, or the removal of the dir would wait on a stranger (or a kill hit one).
    work_dir = tmp_path / "restore" / "work"
    work_dir.mkdir(parents=True)
    (work_dir / "lazy-pages.pid").write_text(str(os.getpid()))
    assert work.lazy_daemon(str(work_dir)) is None
    assert work.wait_lazy_fill(str(tmp_path), deadline_s=0.0) is True


def test_restore_dirs_are_made_fresh_and_private(tmp_path: Path) -> None:
    stale = tmp_path / "restore" / "work" / "restore.log"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier restore's")
    work_dir, images = work.restore_dirs(str(tmp_path))
    assert not stale.exists()
    assert os.listdir(work_dir) == [] and os.listdir(images) == []
    assert (os.stat(work_dir).st_mode & 0o777, os.stat(images).st_mode & 0o777) == (0o700, 0o700)


def _daemon_log(root: Path, text: str) -> None:
    """The lazy-pages daemon's log of a restore under `root`, as CRIU writes it."""
    log = root / "restore" / "work" / "lazy-pages.log"
    log.parent.mkdir(parents=True)
    log.write_text(text)


def test_the_lazy_fill_is_summed_over_the_daemons_tasks_at_its_last_summary(
    tmp_path: Path,
) -> None:
    _daemon_log(
        tmp_path,
        "(00.000120) uffd: 1-7: #PF at 0x7f0000001000\n"
        "(00.412000) uffd: 1-7: UFFD transferred pages: (262000/262144)\n"
        "(00.523101) uffd: 9-8: UFFD transferred pages: (10/10)\n",
    )
    assert work.lazy_fill(str(tmp_path)) == {"fill_s": 0.523101, "pages": 262010, "of": 262154}


def test_the_lazy_fill_is_timed_from_the_restore_reaching_the_daemon_not_its_start(
    tmp_path: Path,
) -> None:
    # The daemon starts while the page files still arrive (seconds of a whole-state round).
    _daemon_log(
        tmp_path,
        "(00.000100) Waiting for incoming connections on /x/lazy-pages.socket\n"
        "(02.400000) Received PID: 7, uffd: 5\n"
        "(02.410000) Received PID: 9, uffd: 6\n"
        "(02.650000) uffd: 7-5: UFFD transferred pages: (100/100)\n",
    )
    fill = work.lazy_fill(str(tmp_path))
    assert fill is not None and fill["fill_s"] == pytest.approx(0.25)


def test_a_daemon_log_without_a_summary_is_no_fill(tmp_path: Path) -> None:
    # (what a daemon killed mid-fill leaves: the migration then reports it as an error)
    _daemon_log(tmp_path, "(00.000120) uffd: 1-7: #PF at 0x7f0000001000\n")
    assert work.lazy_fill(str(tmp_path)) is None
    assert work.lazy_fill(str(tmp_path / "elsewhere")) is None


def _stand_in_daemon(work_dir: Path) -> subprocess.Popen[bytes]:
    """A process whose command line names lazy-pages and `work_dir`, as the daemon's does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "lazy-pages", str(work_dir)]
    )
    (work_dir / "lazy-pages.pid").write_text(str(proc.pid))
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while b"lazy-pages" not in cmdline.read_bytes():  # until it runs (forked, not yet exec'd)
        time.sleep(0.01)
    return proc


def test_a_daemon_whose_restore_never_began_is_killed_by_the_wait_for_its_fill(
    tmp_path: Path,
) -> None:
    # Its receiver died between starting it and the restore: it would wait for ever.
    work_dir = tmp_path / "restore" / "work"
    work_dir.mkdir(parents=True)
    daemon = _stand_in_daemon(work_dir)
    try:
        assert work.wait_lazy_fill(str(tmp_path), deadline_s=5.0) is True
        assert daemon.wait(timeout=5) == -signal.SIGKILL
    finally:
        daemon.kill()


def test_a_daemon_whose_restore_began_is_waited_for_never_killed(tmp_path: Path) -> None:
    work_dir = tmp_path / "restore" / "work"
    work_dir.mkdir(parents=True)
    daemon = _stand_in_daemon(work_dir)
    try:
        work.restore_begins(str(work_dir))
        assert work.wait_lazy_fill(str(tmp_path), deadline_s=0.3) is False
        assert daemon.poll() is None
    finally:
        daemon.kill()
        daemon.wait()
