"""An optional CPU inference backend: the same network, with the same weights, compiled by OpenVINO.

Eager PyTorch spends most of a Swin network's CPU time in memory-bound steps (LayerNorm, softmax, window
reshapes, copies) that OpenVINO fuses: on 2 cores SKS ran 2.8x faster and its logits stayed within 1e-4 of
PyTorch's (benchmarks/RESULTS.md). Full precision only: bf16 changed 0.5 % of the argmax labels of a random
SKS, and no trained model has shown that Dice is unchanged.

The network's Python code decides padding, windows and masks from the input's shape, so a model is traced
and compiled per input shape (a few seconds to ~15 s for SKS); a smaller last batch is padded to the
compiled batch. With a `key` (the weights' sha256) the traced model is kept under the user's home, so the
next volume of that shape skips the tracing; its files' sha256 are recorded beside them and checked on every load (a
mismatch or a missing record means tracing again, never loading an unverified model)."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..environment import temporary_environment
from ..errors import BadInputError, MissingDependencyError
from ..json_files import write_json_atomically
from ..resources import user_home

BACKENDS = ("auto", "torch", "openvino")
# tracing a network for a new input shape briefly holds a second copy of its graph: +0.5 GiB at the peak for the
# bundled SKS on the head CT (benchmarks/RESULTS.md, memory guard); the input check does not count it
TRACE_BYTES = int(0.6 * 2**30)
AUTO_MIN_BATCHES = 8  # below this, tracing costs more than OpenVINO saves (auto keeps PyTorch)


def openvino_available() -> bool:
    from importlib.util import find_spec

    return find_spec("openvino") is not None


def inference_net(net: torch.nn.Module, device, backend: str = "auto", batches: int = AUTO_MIN_BATCHES,
                  key: str | None = None, report=lambda *a, **k: None):
    """What runs the forward passes: `net` itself, or an OpenVINONet of it. "auto": OpenVINO on a CPU when
    it is installed and the job has at least AUTO_MIN_BATCHES forward passes; "openvino" insists."""
    if backend not in BACKENDS:
        raise BadInputError(f"Unknown inference backend '{backend}'.", f"Use one of: {', '.join(BACKENDS)}.")
    on_cpu = torch.device(device).type == "cpu"
    if backend == "openvino":
        if not openvino_available():
            raise MissingDependencyError("The OpenVINO backend was asked for, but OpenVINO is not installed.",
                                         "pip install openvino (or choose the backend 'torch' or 'auto').")
        if not on_cpu:
            raise MissingDependencyError(f"The OpenVINO backend runs on the CPU; this job runs on {device}.",
                                         "Choose the backend 'torch' (or 'auto') on a GPU.")
    elif backend == "torch" or not (on_cpu and openvino_available() and batches >= AUTO_MIN_BATCHES):
        return net
    report(None, "inference", "compiling the network with OpenVINO for this CPU")
    return OpenVINONet(net, key, fallback=(backend == "auto"), report=report)


def _without_telemetry():
    """OpenVINO's model converter sends usage telemetry unless it runs "in CI" (its only switch that writes
    nothing to the user's home): no network at run time, so conversion runs with CI=true."""
    return temporary_environment("CI", "true")


class OpenVINONet:
    """Called like the network: a (B, C, ...) float tensor -> its logits (a CPU tensor)."""

    def __init__(self, net: torch.nn.Module, key: str | None = None, threads: int | None = None, fallback: bool = False,
                 report=lambda *a, **k: None):
        """`fallback`: if OpenVINO cannot trace or compile the network, run it in PyTorch (and say so)."""
        with _without_telemetry():
            import openvino as ov

        self.net, self.key, self.fallback, self.report, self.failed = net.eval(), key, fallback, report, False
        self.core = ov.Core()
        self.config = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled: dict[tuple, object] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.failed:
            return self.net(x)
        shape = tuple(x.shape)
        batch = next((s[0] for s in self.compiled if s[1:] == shape[1:] and s[0] >= shape[0]), shape[0])
        full = (batch,) + shape[1:]
        if full not in self.compiled:
            try:
                self.compiled[full] = self.core.compile_model(self._model(full), "CPU", self.config)
            except Exception as error:  # an operation OpenVINO cannot take: the network still runs, in PyTorch
                if not self.fallback:
                    raise
                self.failed = True
                self.report(None, "inference", f"OpenVINO could not compile the network ({type(error).__name__}); using PyTorch")
                return self.net(x)
        data = x.detach().cpu().float().numpy()
        if batch > shape[0]:  # the last, smaller batch: zero slices fill it, their outputs are dropped
            data = np.concatenate([data, np.zeros((batch - shape[0],) + shape[1:], np.float32)])
        return torch.from_numpy(np.array(self.compiled[full](data)[0][: shape[0]]))

    def _model(self, shape: tuple):
        import openvino as ov

        cached = self._cache_path(shape)
        if cached is not None and cached.exists():
            model = self._read_verified(cached)
            if model is not None:
                return model
            self.report(None, "inference", f"the cached OpenVINO model {cached.name} failed verification; tracing it again")
        import psutil

        if psutil.virtual_memory().available < TRACE_BYTES:  # "auto" then runs the network in PyTorch instead
            raise MemoryError(f"tracing needs about {TRACE_BYTES / 2**30:.1f} GiB of free memory")
        with warnings.catch_warnings(), torch.no_grad(), _without_telemetry():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape logic is traced for this one shape, on purpose
            model = ov.convert_model(self.net, example_input=torch.zeros(shape), input=[list(shape)])
        if cached is not None:
            _save_verified(model, cached)
        return model

    def _read_verified(self, xml: Path):
        """The cached model, read from the very bytes whose sha256 matched the record; None if anything differs."""
        import openvino as ov

        try:
            record = json.loads(_record_path(xml).read_text(encoding="utf-8"))
            xml_bytes, bin_bytes = xml.read_bytes(), xml.with_suffix(".bin").read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("xml") != _sha256(xml_bytes) or record.get("bin") != _sha256(bin_bytes):
            return None
        return self.core.read_model(xml_bytes, ov.Tensor(np.frombuffer(bin_bytes, np.uint8).copy()))

    def _cache_path(self, shape: tuple) -> Path | None:
        if not self.key:
            return None
        import openvino as ov

        version = ov.__version__.split("-")[0]
        return user_home() / "openvino" / f"{self.key[:16]}-ov{version}" / ("x".join(map(str, shape)) + ".xml")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_path(xml: Path) -> Path:
    return xml.with_suffix(".sha256.json")


def _save_verified(model, xml: Path) -> None:
    """Save the traced model under temporary names, rename it into place, then record its files' sha256:
    a reader verifies against the record, so a crash, a concurrent writer or an edited file means a rebuild."""
    import openvino as ov

    xml.parent.mkdir(parents=True, exist_ok=True)
    tmp = xml.with_name(f".{xml.stem}.{os.getpid()}.tmp.xml")
    ov.save_model(model, tmp, compress_to_fp16=False)  # the default would halve the weights' precision
    xml_bytes, bin_bytes = tmp.read_bytes(), tmp.with_suffix(".bin").read_bytes()
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)
    write_json_atomically(_record_path(xml), {"xml": _sha256(xml_bytes), "bin": _sha256(bin_bytes)}, indent=2)
