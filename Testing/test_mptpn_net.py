"""MPTPN's network: shapes through every block, each ablation switch, and a prompt that changes the output."""
import pytest
import torch

from slicerleap.segmentation.mptpn.net import MPTPN, MSFF, MPTPNConfig, mptpn_loss


def tiny(**switches):
    return MPTPNConfig(img_size=32, channels=8, patch=8, heads=2, text_width=24, text_tokens=6, **switches)


def test_msff_maps_every_scale_to_every_scale():
    c = 8
    out = MSFF(c)([torch.randn(2, c, 16, 16), torch.randn(2, 2 * c, 8, 8), torch.randn(2, 4 * c, 4, 4)])
    assert [tuple(t.shape) for t in out] == [(2, 3 * c, 16, 16), (2, 6 * c, 8, 8), (2, 12 * c, 4, 4)]


@pytest.mark.parametrize("switches", [{}, {"down_vit": False}, {"up_vit": False}, {"msff": False},
                                      {"up_attention": False}])
def test_every_variant_segments_and_learns_and_the_prompt_matters(switches):
    torch.manual_seed(0)
    net = MPTPN(tiny(**switches))
    image = torch.randn(2, 1, 32, 32)
    words = torch.randn(2, 6, 24)
    assert net(image, words).shape == (2, 1, 32, 32)
    net.eval()
    with torch.no_grad():
        assert not torch.allclose(net(image, words), net(image, torch.randn(2, 6, 24)))
    # The prompt alone tells which half is foreground: the network must read the text to fit both targets.
    net.train()
    target = torch.zeros(2, 1, 32, 32)
    target[0, :, :16], target[1, :, 16:] = 1, 1
    same_image = image[:1].expand(2, -1, -1, -1)
    optimiser = torch.optim.Adam(net.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss = mptpn_loss(net(same_image, words), target)
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first


def test_loss_is_small_for_a_right_answer_and_bad_sizes_are_named():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4] = 1
    assert mptpn_loss((target * 2 - 1) * 20, target) < 0.01 < mptpn_loss(-(target * 2 - 1) * 20, target)
    with pytest.raises(ValueError, match="divisible"):
        MPTPN(MPTPNConfig(img_size=100))
