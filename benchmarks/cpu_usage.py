"""CPU accounting from /proc: server process, load generator and the whole machine."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from load_client import Tally


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine_busy(since: tuple[int, int]) -> float:
    """The share of all cores busy since ``since`` (a ``machine_ticks()`` reading)."""
    busy, total = machine_ticks()
    return (busy - since[0]) / max(1, total - since[1])


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of one local process (0 when unknown)."""
    if pid is None:
        return 0.0
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its live children and the children it has reaped (a server
    whose backends come and go, such as PostgreSQL's postmaster)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK") + sum(_live_cpu(c) for c in children(pid))


def _live_cpu(pid: int) -> float:
    try:
        return process_cpu_seconds(pid)
    except OSError:  # it exited since it was listed
        return 0.0


def idle_check() -> str:
    """How busy the machine is before we start: another workload makes every figure low."""
    busy, total = machine_ticks()
    time.sleep(1.0)
    busy_after, total_after = machine_ticks()
    share = (busy_after - busy) / max(1, total_after - total)
    warning = "" if share < 0.1 else " - OTHER PROCESSES ARE BUSY: figures will be low and noisy"
    return f"idle:    machine {share:.0%} busy in the second before the runs{warning}"


@dataclass(frozen=True)
class CpuUse:
    """Cores busy during a run; ``server`` is None when the server was not started here."""

    server: float | None
    client: float
    machine: float
    wall: float


class CpuMeter:
    """Where the CPU went during a run: server process, load generator, whole machine.

    Shown with every run because on 2 cores the three compete, and a figure means little
    without knowing whether the server or the machine was saturated.
    """

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._machine = machine_ticks()
        self._process = process_cpu_seconds(pid)
        self._wall = time.monotonic()

    def read(self, tallies: list[Tally]) -> CpuUse:
        """Cores used since construction; the client's figure comes from the workers."""
        busy, total = machine_ticks()
        wall = time.monotonic() - self._wall
        server = (process_cpu_seconds(self._pid) - self._process) / wall
        return CpuUse(
            server=server if self._pid else None,
            client=sum(t.client_cpu for t in tallies) / wall,
            machine=(busy - self._machine[0]) / max(1, total - self._machine[1]),
            wall=wall,
        )
