"""Mixed-precision training: forward pass and loss under bf16 autocast, weights and optimiser in fp32.

Why: on CPUs with native bf16 (AVX512-BF16 / AMX) oneDNN runs the convolutions of our slice networks
1.3-1.6x faster than fp32, which is the difference between a training budget that fits a CPU session and
one that does not (benchmarks/RESULTS.md). bf16 keeps fp32's exponent range, so no loss scaling is needed.
Elsewhere bf16 is emulated (older x86 CPUs) or has no fast kernels (CUDA before compute capability 8), so
"auto" picks it only where it is native. Inference and validation stay fp32."""
from __future__ import annotations

import contextlib

PRECISIONS = ("fp32", "bf16", "auto")
PRECISION_HELP = ("training arithmetic: fp32, or bf16 mixed precision (1.3x faster on a CPU with native bf16, Dice within "
                  "seed noise: benchmarks/RESULTS.md); auto = bf16 where the CPU/GPU computes it natively")


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISIONS; else a BadInputError naming the choices (before any work starts)."""
    from .errors import BadInputError

    if precision not in PRECISIONS:
        raise BadInputError(f"Unknown training precision {precision!r}.", f"Use one of {', '.join(PRECISIONS)}.")
    return precision


def bf16_is_native(device) -> bool:
    """Whether `device` computes bf16 in hardware: CUDA compute capability >= 8 (or ROCm); an x86 CPU with
    AVX512-BF16 or AMX; another CPU (ARM) where oneDNN reports bf16 support."""
    import platform

    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        # oneDNN's own check accepts any AVX512 core, where bf16 is emulated and slower than fp32
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device) -> str:
    """"fp32" or "bf16" for `device`: "auto" is bf16 where it is native; an explicit choice is kept."""
    if check_precision(precision) == "auto":
        return "bf16" if bf16_is_native(device) else "fp32"
    return precision


def autocast(device, precision: str):
    """Context for the forward pass and the loss under a resolved precision ("fp32" or "bf16"); a no-op for
    fp32. Call backward() and the optimiser step outside it, as torch's AMP recipe does."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"autocast needs a resolved precision (fp32 or bf16), got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
