"""Meters that run alongside a measurement: peak memory and energy. Each returns a number it read, or None
with the reason it could not read one; nothing here estimates or invents a figure."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass
class MemoryReading:
    peak_bytes: int | None
    method: str
    reason: str | None = None


class PeakMemory:
    """Peak memory during a block. On CUDA: torch.cuda.max_memory_allocated after a reset. On CPU: the
    process's peak RSS (VmHWM) minus its RSS at the start; writing "5" to /proc/self/clear_refs resets the
    peak first (Linux >= 4.0), otherwise an earlier, higher peak would hide this block's."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._start = 0
        self._resettable = True

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            return self
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            self._resettable = False
        self._start = (_status_kb("VmRSS") or 0) * 1024
        return self

    def __exit__(self, *exc) -> None:
        return None

    def reading(self) -> MemoryReading:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - self._start
            return MemoryReading(max(peak, 0), "torch.cuda.max_memory_allocated")
        hwm = _status_kb("VmHWM")
        if hwm is None:
            return MemoryReading(None, "rss", "/proc/self/status is not readable on this system")
        if not self._resettable:
            return MemoryReading(
                None, "rss", "/proc/self/clear_refs is not writable, so the peak RSS cannot be reset"
            )
        return MemoryReading(max(hwm * 1024 - self._start, 0), "rss-delta")


# ----- energy ------------------------------------------------------------------------------------------


@dataclass
class EnergyReading:
    joules: float | None
    source: str | None
    reason: str | None = None


class EnergyMeter:
    """Energy over a block from Intel RAPL (package domains, /sys/class/powercap) or NVML (GPU total
    energy). RAPL counts the whole package, other processes included: on a shared machine that is an
    upper bound on this model's energy, and the record says which source it came from."""

    def __init__(self, device: str = "cpu", powercap: str = "/sys/class/powercap"):
        self.device = device
        self.powercap = powercap
        self._read: Callable[[], float] | None = None
        self._wrap = 0.0
        self._start = 0.0
        self.source: str | None = None
        self.reason: str | None = None
        self._open()

    def _open(self) -> None:
        if self.device.startswith("cuda"):
            self._open_nvml()
        else:
            self._open_rapl()

    def _open_rapl(self) -> None:
        domains = sorted(glob.glob(os.path.join(self.powercap, "intel-rapl:[0-9]")))
        if not domains:
            self.reason = f"no RAPL package domains under {self.powercap}"
            return
        files = [Path(d) / "energy_uj" for d in domains]
        try:
            for f in files:
                int(f.read_text())
            self._wrap = sum(int((Path(d) / "max_energy_range_uj").read_text()) for d in domains) * 1e-6
        except (OSError, ValueError) as e:
            self.reason = f"RAPL counters are not readable ({e.__class__.__name__}); reading needs root"
            return

        def read() -> float:
            return sum(int(f.read_text()) for f in files) * 1e-6

        self._read, self.source = read, "rapl"

    def _open_nvml(self) -> None:
        try:
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            index = torch.cuda.current_device()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception as e:
            self.reason = f"NVML energy counter unavailable ({e.__class__.__name__}: {e})"
            return

        def read() -> float:
            return pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) * 1e-3  # mJ -> J

        self._read, self.source = read, "nvml"

    def __enter__(self) -> EnergyMeter:
        if self._read is not None:
            self._start = self._read()
        return self

    def __exit__(self, *exc) -> None:
        if self._read is not None:
            end = self._read()
            delta = end - self._start
            if delta < 0:  # the counter wrapped around during the block
                delta += self._wrap
            self._joules: float | None = delta
        else:
            self._joules = None

    def reading(self) -> EnergyReading:
        return EnergyReading(getattr(self, "_joules", None), self.source, self.reason)


def cost_per_million(throughput_per_s: float | None, dollars_per_hour: float | None) -> float | None:
    """Dollars per million inferences on a machine that costs `dollars_per_hour`, at full use."""
    if not throughput_per_s or dollars_per_hour is None:
        return None
    return dollars_per_hour / 3600.0 / throughput_per_s * 1e6
