"""FedICRA's adaptive aggregation (AA) of the personalised decoder: theta^_i = theta_g + (theta_i - theta_g) * W_i,
with element-wise weights W_i in [0, 1] (initialised to 1) learned on the site's own data while theta_g (the
global decoder) and theta_i (the site's previous local decoder) stay fixed."""
from __future__ import annotations

from typing import Callable

import torch
from torch.func import functional_call


def blend(global_decoder: dict, local_decoder: dict, weights: dict) -> dict:
    """theta_g + (theta_i - theta_g) * W, per tensor; tensors without a W (buffers: batch-norm running statistics
    and counters) are the local decoder's, so they stay personal like the decoder (as FedALA, whose AA FedICRA
    uses, blends parameters only)."""
    out = {}
    for name, g in global_decoder.items():
        if name in weights:
            out[name] = g + (local_decoder[name] - g) * weights[name]
        else:
            out[name] = local_decoder[name]
    return out


def learn_aggregation_weights(net: torch.nn.Module, global_decoder: dict, local_decoder: dict, batches, loss_fn: Callable,
                              steps: int, lr: float = 0.01, weights: dict | None = None) -> dict:
    """Fit W (element-wise, clipped to [0, 1]) for `steps` batches: `batches` is an iterator of (net arguments
    tuple, target) on the net's device; `loss_fn(logits, target)`. The rest of the network (the shared part, and the
    decoder's buffers) is the net's current state.
    Returns W (start from `weights`, or all ones)."""
    parameters = dict(net.named_parameters())  # W for parameters only: running statistics are not learnt (unused in train mode)
    floats = {k: v for k, v in global_decoder.items() if k in parameters}
    w = {k: (weights[k].clone() if weights and k in weights else torch.ones_like(v)).requires_grad_(True) for k, v in floats.items()}
    optimiser = torch.optim.Adam(w.values(), lr=lr)  # per-element steps: the raw gradients are (theta_i - theta_g)-scaled
    fixed = {k: v.detach().clone() for k, v in net.state_dict().items()}  # a copy: train-mode batch norm updates buffers in place
    for _ in range(steps):
        args, target = next(batches)
        params = {**fixed, **blend({k: global_decoder[k].detach() for k in floats}, {k: local_decoder[k].detach() for k in floats}, w)}
        loss = loss_fn(functional_call(net, params, args), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for v in w.values():
                v.clamp_(0.0, 1.0)
    return {k: v.detach() for k, v in w.items()}
