"""Mixed-precision training: forward pass and loss under bf16 autocast, weights and optimiser in fp32.

Why: on CPUs with native bf16 (AVX512-BF16 / AMX) oneDNN runs the convolutions of our slice networks
1.4-1.6x faster than fp32, which is the difference between a training budget that fits a CPU session and
one that does not (benchmarks/RESULTS.md). bf16 keeps fp32's exponent range, so no loss scaling is needed.
On a CPU without native bf16 it would be emulated and slower, so "auto" picks it only where it is native;
on CUDA it needs an Ampere-or-newer GPU."""
from __future__ import annotations

import contextlib

PRECISIONS = ("fp32", "bf16", "auto")
PRECISION_HELP = ("training arithmetic: fp32, or bf16 mixed precision (1.3x faster on a CPU with native bf16, Dice within "
                  "seed noise: benchmarks/RESULTS.md); auto = bf16 where the CPU/GPU computes it natively")


def bf16_is_native(device) -> bool:
    """Whether `device` computes bf16 in hardware (CUDA: compute capability >= 8; CPU: oneDNN's check)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device) -> str:
    """"fp32" or "bf16" for `device`: "auto" is bf16 where it is native. An explicit "bf16" is honoured
    anywhere (slow where emulated)."""
    from ..errors import BadInputError

    if precision not in PRECISIONS:
        raise BadInputError(f"Unknown training precision {precision!r}.", f"Use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return "bf16" if bf16_is_native(device) else "fp32"
    return precision


def autocast(device, precision: str):
    """Context for the forward pass and the loss; a no-op for fp32. Call backward() and the optimiser
    step outside it, as torch's AMP recipe does."""
    import torch

    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
