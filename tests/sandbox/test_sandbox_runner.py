"""How a finished run is described: signals, limits hit and the status bwrap and docker report."""

from __future__ import annotations

import signal

import pytest

from redtier.sandbox._cgroups import CgroupStats
from redtier.sandbox._runner import decode_exit_status, decode_returncode, limits_hit


@pytest.mark.parametrize(
    ("timed_out", "signal_number", "stderr", "stats", "overflow", "expected"),
    [
        (True, signal.SIGKILL, "", CgroupStats(), False, ("wall_timeout",)),
        (False, signal.SIGXCPU, "", CgroupStats(), False, ("cpu",)),
        (False, signal.SIGXFSZ, "", CgroupStats(), False, ("file_size",)),
        (False, None, "OSError: [Errno 27] File too large", CgroupStats(), False, ("file_size",)),
        (False, signal.SIGKILL, "", CgroupStats(oom_kills=1), False, ("memory",)),
        (False, None, "MemoryError", CgroupStats(), False, ("memory",)),
        (False, None, "", CgroupStats(pids_max_hits=3), False, ("processes",)),
        (
            False,
            None,
            "BlockingIOError: [Errno 11] Resource temporarily unavailable",
            CgroupStats(),
            False,
            ("processes",),
        ),
        (False, None, "", CgroupStats(), True, ("output",)),
        (False, None, "", CgroupStats(), False, ()),
    ],
)
def test_limits_hit(
    timed_out: bool,
    signal_number: int | None,
    stderr: str,
    stats: CgroupStats,
    overflow: bool,
    expected: tuple[str, ...],
) -> None:
    assert limits_hit(timed_out, signal_number, stderr, stats, overflow) == expected


def test_decode_exit_status() -> None:
    assert decode_exit_status(0) == (0, None)
    assert decode_exit_status(3) == (3, None)
    assert decode_exit_status(128 + signal.SIGXCPU) == (None, signal.SIGXCPU)
    assert decode_exit_status(-signal.SIGKILL) == (None, signal.SIGKILL)
    assert decode_exit_status(200) == (200, None)


def test_decode_returncode() -> None:
    assert decode_returncode(152) == (152, None)
    assert decode_returncode(-9) == (None, 9)
