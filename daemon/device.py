"""Is the device free to train on? On CUDA: no other compute process and enough free memory.

NVML (`nvidia-ml-py`, imported only here and only when asked) answers first; without it, `nvidia-smi`'s CSV
output; with neither, there is no GPU. The daemon takes the probe as a parameter, so tests pass their own.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Collection
from dataclasses import dataclass

#: below this much free GPU memory a training would only fail with an out-of-memory error
MIN_FREE_MB = 2048


@dataclass(frozen=True)
class DeviceState:
    #: "cuda" or "cpu" (no usable GPU found)
    kind: str
    idle: bool
    detail: str
    #: pids of the other compute processes on the GPU
    busy_pids: tuple[int, ...] = ()
    free_mb: int | None = None


Probe = Callable[[Collection[int]], DeviceState]


def probe(ignore_pids: Collection[int] = ()) -> DeviceState:
    """The first GPU's state; processes in `ignore_pids` (a server that has yielded) do not count as busy."""
    found = _nvml()
    if found is None:
        found = _nvidia_smi()
    if found is None:
        return DeviceState("cpu", True, "no GPU found (NVML and nvidia-smi unavailable)")
    free_mb, pids = found
    return judge(free_mb, pids, ignore_pids)


def judge(free_mb: int, pids: Collection[int], ignore_pids: Collection[int] = (),
          min_free_mb: int = MIN_FREE_MB) -> DeviceState:
    busy = tuple(sorted(p for p in pids if p not in set(ignore_pids)))
    if busy:
        return DeviceState("cuda", False, f"GPU busy: compute process(es) {', '.join(map(str, busy))}", busy,
                           free_mb)
    if free_mb < min_free_mb:
        return DeviceState("cuda", False, f"GPU has only {free_mb} MiB free (needs {min_free_mb})", (), free_mb)
    return DeviceState("cuda", True, f"GPU idle, {free_mb} MiB free", (), free_mb)


def _nvml() -> tuple[int, list[int]] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        free = pynvml.nvmlDeviceGetMemoryInfo(handle).free // 2**20
        pids = [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)]
        return int(free), pids
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi() -> tuple[int, list[int]] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        free = subprocess.run([exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", "0"],
                              capture_output=True, text=True, timeout=20, check=True).stdout
        apps = subprocess.run([exe, "--query-compute-apps=pid", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20, check=True).stdout
        return int(free.split()[0]), [int(p) for p in apps.split() if p.strip().isdigit()]
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
