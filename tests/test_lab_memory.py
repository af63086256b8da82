from pathlib import Path

from whimbrel.backends.lab.memory import (
    OFF,
    SPARE,
    back_free_memory,
    hold_freed_memory,
    release_freed_memory,
)


def test_page_reporting_is_turned_off_and_its_order_put_back(tmp_path: Path) -> None:
    knob, saved = tmp_path / "page_reporting_order", tmp_path / "saved"
    knob.write_text("9\n")
    said = hold_freed_memory(saved, knob)
    assert knob.read_text() == OFF and "order 9" in (said or "")
    release_freed_memory(saved, knob)
    assert knob.read_text() == "9" and not saved.exists()


def test_a_kernel_without_page_reporting_is_left_alone(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    assert hold_freed_memory(saved, tmp_path / "absent") is None
    release_freed_memory(saved, tmp_path / "absent")
    assert not saved.exists()


def test_reporting_already_off_is_not_recorded_as_the_order_to_restore(tmp_path: Path) -> None:
    knob, saved = tmp_path / "page_reporting_order", tmp_path / "saved"
    knob.write_text(OFF)
    assert hold_freed_memory(saved, knob) == "page reporting already off"
    assert not saved.exists()


def test_free_memory_is_backed_ahead_but_never_the_spare(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: 9 kB\nMemAvailable: {(SPARE + 2**24) // 1024} kB\n")
    assert back_free_memory(2**30, meminfo).startswith("0.0 GiB of free memory backed")
    meminfo.write_text(f"MemAvailable: {SPARE // 1024} kB\n")
    assert back_free_memory(2**30, meminfo) == "too little free memory to back ahead"
