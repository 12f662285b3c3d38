"""bf16 mixed-precision training: where it is chosen, what autocast changes, and that fp32 is left alone."""
import pytest
import torch

from slicerleap.errors import BadInputError
from slicerleap.models.mixed_precision import autocast, bf16_is_native, resolve_precision


def test_auto_picks_bf16_only_where_it_is_native_and_explicit_choices_are_kept():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if bf16_is_native(cpu) else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "meta") == "fp32"  # no bf16 path known for other devices


def test_an_unknown_precision_names_the_choices():
    with pytest.raises(BadInputError, match="fp16") as err:
        resolve_precision("fp16", "cpu")
    assert "fp32, bf16, auto" in err.value.fix


def test_autocast_runs_convolutions_in_bf16_and_fp32_unchanged():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    with autocast("cpu", "bf16"):
        low = conv(x)
    with autocast("cpu", "fp32"):
        full = conv(x)
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert torch.equal(full, conv(x))
    assert torch.allclose(low.float(), full, atol=0.05, rtol=0.02)  # bf16 keeps ~3 significant digits
