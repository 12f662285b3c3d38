"""Training on several processes (torchrun): what a training loop needs to know about its place among them.

A job launched with `processes` (jobs/protocol.py) runs under `torch.distributed.run`; every process runs the same
task. Gradients are averaged by DDP (gloo on CPU, NCCL on GPUs), each process computes its share of every global
batch, validation cases are split between processes and their scores gathered, and only the first process (rank 0)
writes outputs and progress. With one process every function here is the identity, so a loop written with them
is the same loop on one machine."""
from __future__ import annotations

import os

import numpy as np
import torch


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Each process on a node takes its own GPU."""
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def start(device: torch.device) -> None:
    """Join the process group (once); NCCL between GPUs, gloo on CPU."""
    import torch.distributed as dist

    if world_size() > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def stop() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP around the network when there are several processes; the network itself otherwise. Parts a stage does not
    use (SKS's segmentation decoder while its slice classifier trains) are allowed."""
    if world_size() == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)


class Through(torch.nn.Module):
    """A network's other entry point (e.g. `classify`) as a module's forward, so DDP can wrap it."""

    def __init__(self, net: torch.nn.Module, method: str):
        super().__init__()
        self.net, self.method = net, method

    def forward(self, *args, **kwargs):
        return getattr(self.net, self.method)(*args, **kwargs)


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return getattr(net, "module", net)


def my_share(items: list) -> list:
    """This process's part of a list (validation cases, a global batch), contiguous, in order; parts differ in size by
    at most one, and a process may get none (one validation case, two processes: MONAI's partition_dataset refuses
    fewer items than processes, hence these two lines)."""
    items = list(items)
    return items[_my_bounds(len(items))]


def _my_bounds(n: int) -> slice:
    if world_size() == 1:
        return slice(0, n)
    bounds = np.linspace(0, n, world_size() + 1).round().astype(int)
    return slice(int(bounds[rank()]), int(bounds[rank() + 1]))


def share_buffers(net: torch.nn.Module) -> None:
    """Give every process the first process's buffers (batch-norm running statistics: each process updated them on its
    own share of the last batch), so that validation and the kept weights are the same everywhere."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    for buffer in net.buffers():
        dist.broadcast(buffer.data, src=0)


def batch_share(*tensors):
    """This process's rows of a global batch that every process drew alike (the same seeded generator)."""
    if world_size() == 1:
        return tensors if len(tensors) > 1 else tensors[0]
    rows = _my_bounds(len(tensors[0]))
    part = tuple(None if t is None else t[rows] for t in tensors)
    return part if len(part) > 1 else part[0]


def any_process(flag: bool, device: torch.device) -> bool:
    """True when any process says so (a stop request seen by one process stops all at the same step)."""
    return sum_over_processes([float(flag)], device)[0] > 0


def mean_over_processes(values: list[float], device: torch.device) -> float | None:
    """The mean of every process's values together (validation scores of their shares of the cases)."""
    if world_size() == 1:
        return float(np.mean(values)) if len(values) else None
    total, count = sum_over_processes([float(sum(values)), float(len(values))], device)
    return total / count if count else None


def check_batch_divides(batch_size: int, processes: int | None = None) -> None:
    """Each process gets an equal share of a batch; `processes` default: those of this run (the CLI asks before)."""
    from .errors import BadInputError

    processes = processes or world_size()
    if batch_size % processes:
        raise BadInputError(f"A batch of {batch_size} cannot be split evenly between {processes} processes.",
                            f"Use a batch size (--batch-size) that is a multiple of {processes}, or fewer processes.")


def sum_over_processes(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over every process (validation scores and counts, losses)."""
    if world_size() == 1:
        return list(values)
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
