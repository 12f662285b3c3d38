"""What a federated model update holds: the floating-point tensors of a network's state dict (weights and batch-norm
running statistics). Integer counters (batch norm's num_batches_tracked, unused with its momentum) stay where they
are: averaging or noising integers is meaningless, and Flower's DP noise cannot be added to them. No Flower here, so
the FedICRA parts can use it without the Flower apps."""
from __future__ import annotations


def update_state(net) -> dict:
    """The tensors of `net` that an update carries."""
    return {k: v for k, v in net.state_dict().items() if v.is_floating_point()}


def load_update(net, state: dict) -> None:
    """Load an update's tensors (update_state) into `net`, keeping its own integer counters; an update that lacks
    any of the net's floating-point tensors (another network) is refused, as a strict load would."""
    own = net.state_dict()
    missing = sorted(k for k, v in own.items() if v.is_floating_point() and k not in state)
    if missing:
        raise ValueError(f"the model update lacks {len(missing)} of this network's tensors (e.g. {missing[0]}): "
                         "the sites and the coordinator must run the same settings")
    net.load_state_dict({**own, **state})
