"""The optional OpenVINO CPU backend: the same logits as PyTorch (a smaller last batch padded), the same labels
through the whole segmentation pipeline, a traced model reused from the disk cache, and clear refusals."""
import numpy as np
import pytest
import torch

from slicerleap.errors import BadInputError, MissingDependencyError
from slicerleap.models.openvino_backend import AUTO_MIN_BATCHES, OpenVINONet, inference_net
from slicerleap.segmentation.inference import segment_volume
from slicerleap.segmentation.sks.net import SKSNet
from slicerleap.volume import Volume

from phantoms import blob_case

TINY = dict(embed_dim=8, depths=(1, 1, 1), num_heads=(1, 1, 2), window=4)


def tiny_sks():
    torch.manual_seed(0)
    net = SKSNet(**TINY).eval()
    with torch.no_grad():  # a decided network: random weights leave the argmax at chance everywhere
        net.head.bias.copy_(torch.tensor([0.0, -0.3]))
    return net


def test_openvino_logits_match_pytorch_and_a_smaller_last_batch_is_padded():
    net = tiny_sks()
    fast = OpenVINONet(net)
    x = torch.randn(3, 3, 45, 37)  # not a multiple of the patch grid: SKS pads inside
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), net(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(fast(x[:2]), net(x[:2]), atol=1e-4, rtol=1e-4)
    assert list(fast.compiled) == [(3, 3, 45, 37)]  # the batch of 2 ran on the compiled batch of 3
    import openvino_telemetry

    assert openvino_telemetry.Telemetry().consent is False  # no network at run time: the converter sent nothing


def test_the_pipeline_gives_the_same_labels_and_reuses_the_traced_model(monkeypatch, tmp_path):
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path))
    image, _ = blob_case(0, shape=(20, 40, 40))
    card = {"id": "tiny-sks@1.0.0", "sha256": "ab" * 32,
            "input": {"spacing_mm": [1.5, 1.5, None], "slice_axis": "axial", "slice_context": 1,
                      "normalisation": {"kind": "percentile", "lower": 0.5, "upper": 99.5}},
            "labels": [{"value": 1, "name": "Lesion", "color": "#ff0000", "role": "lesion"}]}
    net = tiny_sks()
    labels = {b: segment_volume(image, card, net, "cpu", batch_size=3, backend=b, with_probabilities=True) for b in ("torch", "openvino")}
    (torch_labels, torch_fg), (ov_labels, ov_fg) = labels["torch"], labels["openvino"]
    assert 0 < (torch_labels.array == 1).mean() < 1  # a real decision, not all one class
    np.testing.assert_array_equal(ov_labels.array, torch_labels.array)
    np.testing.assert_allclose(ov_fg.array, torch_fg.array, atol=1e-4)
    cached = list((tmp_path / "openvino").rglob("*.xml"))
    assert len(cached) == 1, cached
    import openvino

    monkeypatch.setattr(openvino, "convert_model", lambda *a, **k: pytest.fail("traced again instead of reading the cache"))
    again = OpenVINONet(net, key=card["sha256"])
    x = torch.randn(*(int(v) for v in cached[0].stem.split("x")))
    with torch.inference_mode():
        torch.testing.assert_close(again(x), net(x), atol=1e-4, rtol=1e-4)


def test_backend_choice_and_refusals():
    net = tiny_sks()
    assert inference_net(net, "cpu", "torch", batches=100) is net
    assert inference_net(net, "cpu", "auto", batches=AUTO_MIN_BATCHES - 1) is net  # tracing would cost more than it saves
    assert isinstance(inference_net(net, "cpu", "auto", batches=AUTO_MIN_BATCHES), OpenVINONet)
    assert inference_net(net, "cuda", "auto", batches=100) is net  # a GPU keeps PyTorch
    with pytest.raises(MissingDependencyError, match="runs on the CPU"):
        inference_net(net, "cuda", "openvino")
    with pytest.raises(BadInputError, match="Unknown inference backend"):
        inference_net(net, "cpu", "tensorrt")


def test_auto_falls_back_to_pytorch_when_openvino_cannot_compile(monkeypatch):
    """A network OpenVINO cannot take still segments under 'auto' (in PyTorch, with a message); asked for
    explicitly, the backend's error surfaces."""
    import openvino

    def refuse(*a, **k):
        raise RuntimeError("unsupported operation")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    net, messages = tiny_sks(), []
    auto = inference_net(net, "cpu", "auto", batches=AUTO_MIN_BATCHES, report=lambda *a, **k: messages.append(a[-1]))
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(auto(x), net(x))
    assert any("using PyTorch" in m for m in messages), messages
    with pytest.raises(RuntimeError, match="unsupported operation"):
        inference_net(net, "cpu", "openvino")(x)


def test_no_trace_without_the_memory_it_needs(monkeypatch):
    """Tracing holds a second copy of the graph: without that much free memory, "auto" runs PyTorch (and says so)
    and "openvino" is refused as a memory problem, instead of the worker being killed."""
    import collections

    import psutil

    low = collections.namedtuple("Memory", "available")(64 * 2**20)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: low)
    net, said = tiny_sks(), []
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        auto = OpenVINONet(net, fallback=True, report=lambda *a: said.append(a[-1]))
        torch.testing.assert_close(auto(x), net(x))
        assert auto.failed and "MemoryError" in said[0]
        with pytest.raises(MemoryError):
            OpenVINONet(net)(x)
