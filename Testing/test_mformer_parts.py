"""MFormer's dynamic deformable convolution against direct references: bilinear sampling written out pixel by pixel,
and, with no offsets, full modulation and one kernel, PyTorch's own convolution."""
import numpy as np
import torch
import torch.nn.functional as F

from slicerleap.reconstruction.mformer.deformable_conv import DynamicDeformableConv2d, deformable_sample


def bilinear(image: np.ndarray, y: float, x: float) -> float:
    """Zero outside the image, as DCN and grid_sample(padding_mode="zeros") define it."""
    h, w = image.shape
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    total = 0.0
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < h and 0 <= xx < w:
                total += image[yy, xx] * (1 - abs(y - yy)) * (1 - abs(x - xx))
    return total


def test_deformable_sampling_matches_bilinear_interpolation_written_out():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(1, 2, 6, 7)), dtype=torch.float64)
    offsets = torch.as_tensor(rng.normal(scale=1.5, size=(1, 18, 6, 7)), dtype=torch.float64)
    sampled = deformable_sample(x, offsets, 3, 1).numpy()
    o = offsets.numpy().reshape(9, 2, 6, 7)
    for c in range(2):
        for t in range(9):
            ty, tx = t // 3 - 1, t % 3 - 1
            for i in range(6):
                for j in range(7):
                    expected = bilinear(x.numpy()[0, c], i + ty + o[t, 0, i, j], j + tx + o[t, 1, i, j])
                    assert abs(sampled[0, c * 9 + t, i, j] - expected) < 1e-9, (c, t, i, j)


def test_without_offsets_full_modulation_and_one_kernel_it_is_a_plain_convolution():
    torch.manual_seed(0)
    conv = DynamicDeformableConv2d(3, 5, kernel_size=3, kernels=1).double()
    torch.nn.init.constant_(conv.offset.bias[18:], 1e3)  # modulation sigmoid(1000) = 1; offsets stay 0
    x = torch.randn(2, 3, 8, 9, dtype=torch.float64)
    expected = F.conv2d(x, conv.weight[0].reshape(5, 3, 3, 3), conv.bias[0], padding=1)
    torch.testing.assert_close(conv(x), expected)


def test_the_kernel_mix_is_per_sample_and_gradients_reach_offsets_and_mix():
    torch.manual_seed(1)
    conv = DynamicDeformableConv2d(4, 4, kernels=4)
    x = torch.randn(2, 4, 10, 10) + torch.tensor([0.0, 3.0])[:, None, None, None]  # two images, two contents
    pi = conv.mix(x)
    assert pi.shape == (2, 4) and torch.allclose(pi.sum(1), torch.ones(2)) and not torch.allclose(pi[0], pi[1])
    conv(x, torch.randn(2, 4, 10, 10)).square().mean().backward()
    assert conv.offset.weight.grad.abs().sum() > 0 and conv.mix.net[0].weight.grad.abs().sum() > 0
