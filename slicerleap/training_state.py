"""A training run's state on disk, so that a stopped run goes on where it was: network, optimiser, schedule,
the best weights so far, the history and the random generators. A derived cache of one run on this machine, not a
model to share: written atomically, read with torch's weights-only loader (tensors and plain values, no code)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .best_weights import BestWeights


def save_training_state(path: str | Path, iteration: int, net, opt, sched, best: BestWeights, history: list[dict],
                        rng: np.random.Generator) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"iteration": iteration, "net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
             "best_score": best.score, "best_state": best.state, "history": history,
             "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_training_state(path: str | Path, net, opt, sched, best: BestWeights, rng: np.random.Generator) -> tuple[int, list[dict]]:
    """Restore a saved run into these objects; returns (iterations done, history). (0, []) when there is none."""
    path = Path(path)
    if not path.exists():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    best.score, best.state = state["best_score"], state["best_state"]
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"]), list(state["history"])
