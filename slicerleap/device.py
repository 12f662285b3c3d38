"""Pick the compute device: CUDA > MPS > CPU unless the user names one; set CPU threads sensibly."""
from __future__ import annotations

import os

from .errors import BadInputError


def select_device(requested: str = "auto"):
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    else:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BadInputError("Device 'cuda' was requested but no CUDA GPU is available.", "Choose device 'auto' or 'cpu'.")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise BadInputError("Device 'mps' was requested but Apple MPS is not available.", "Choose device 'auto' or 'cpu'.")
    if device.type == "cpu":
        configure_cpu_threads()
    return device


def usable_cores() -> int:
    """The cores this process may run on (cgroup/affinity aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """Threads for each of `processes` jobs sharing this machine's cores."""
    return max(1, usable_cores() // processes)


def configure_cpu_threads() -> int:
    """Use the cores this process may run on, unless OMP_NUM_THREADS says otherwise."""
    import torch

    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    n = usable_cores()
    torch.set_num_threads(max(1, n))
    return n


def describe_device(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
