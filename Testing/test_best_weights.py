"""BestWeights: what every trainer keeps — the best validation score, the later of equals, nothing for NaN."""
import torch

from slicerleap.best_weights import BestWeights


def _net(value: float) -> torch.nn.Linear:
    net = torch.nn.Linear(1, 1)
    torch.nn.init.constant_(net.weight, value)
    return net


def test_best_score_wins_a_tie_keeps_the_later_weights_and_nan_keeps_nothing():
    best, out = BestWeights(), _net(0.0)
    assert best.offer(0.0, _net(1.0)) and best.offer(0.0, _net(2.0))  # a tie: the later weights
    assert best.offer(0.5, _net(3.0)) and not best.offer(0.4, _net(4.0))
    assert not best.offer(float("nan"), _net(5.0)) and not best.offer(None, _net(6.0))
    best.restore(out)
    assert out.weight.item() == 3.0 and best.score == 0.5

    ties = BestWeights()
    ties.offer(0.0, _net(1.0)), ties.offer(0.0, _net(2.0))
    ties.restore(out)
    assert out.weight.item() == 2.0

    unvalidated = BestWeights()
    unvalidated.offer(float("nan"), _net(7.0))
    unvalidated.restore(out)  # no score ever: the network keeps its own (last) weights
    assert out.weight.item() == 2.0
