"""FedTools' federated jobs on a real MRML scene (slicer-core): sites from scene nodes, a real Flower
federation in the background worker, progress per round, the global model in the catalog; cancel
leaves no model and no Flower process behind."""
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
for module in ("SlicerLeapCommon", "FedTools"):
    sys.path.insert(0, str(ROOT / module))

from FedToolsLib.logic import FedToolsLogic, round_history  # noqa: E402

from slicerleap.errors import BadInputError  # noqa: E402
from slicerleap.models import ModelCatalog  # noqa: E402
from slicerleap.models.networks import load_model  # noqa: E402
from slicerleap.scene import labels_to_segmentation_node, new_scene_context, volume_to_node  # noqa: E402
from slicerleap.segmentation.inference import segment_volume  # noqa: E402

from phantoms import blob_case  # noqa: E402

LESION = [{"value": 1, "name": "Lesion", "color": "#e6194b"}]
TINY = {"crop": 32, "batch-size": 4, "channels": "8,16,32", "learning-rate": 0.01}


def flower_processes() -> list:
    return [p for p in psutil.process_iter(["cmdline"]) if any("flower-super" in part for part in (p.info["cmdline"] or []))]


@pytest.fixture(scope="module")
def scene_sites():
    ctx = new_scene_context()
    sites = []
    for site in range(2):
        cases = []
        for case in range(2):
            image, labels = blob_case(50 * site + case)
            volume = volume_to_node(ctx, image, f"site {site} case {case}")
            cases.append((volume, labels_to_segmentation_node(ctx, labels, LESION, f"site {site} case {case} seg", reference_node=volume)))
        sites.append(cases)
    return ctx, sites


def test_fedtools_federates_scene_sites_and_registers_the_global_model(scene_sites, tmp_path, monkeypatch):
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    ctx, sites = scene_sites
    nodes_before = ctx.scene.GetNumberOfNodes()
    records = []
    job = FedToolsLogic(ctx).create_federated_job(sites, rounds=1, local_iterations=5, model_id="fed-scene@0.1.0", settings=TINY)
    card = job.run(on_progress=records.append, timeout=900)["model"]
    assert card["id"] == "fed-scene@0.1.0" and ModelCatalog().get("fed-scene@0.1.0")["sha256"] == card["sha256"]
    history = round_history(records)
    assert [(r["round"], r["phase"]) for r in history] == [(0, "evaluate"), (1, "train"), (1, "evaluate")]
    assert all(len(r["sites"]) == 2 for r in history)
    assert ctx.scene.GetNumberOfNodes() == nodes_before  # a model, not a node
    image, _ = blob_case(7)
    labels, _ = segment_volume(image, card, load_model(card, "cpu"), "cpu")  # usable at once by SKSSegmentation's engine
    assert labels.array.shape == image.array.shape


def test_cancelling_a_federated_job_leaves_no_model_and_no_flower_process(scene_sites, tmp_path, monkeypatch):
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    ctx, sites = scene_sites
    job = FedToolsLogic(ctx).create_federated_job(sites, rounds=20, local_iterations=5, model_id="fed-cancel@0.1.0", settings=TINY)
    job.start()
    deadline = time.time() + 300
    while not any("round_log" in r for r in job.poll()):
        assert job.running and time.time() < deadline, "no round was logged"
        time.sleep(0.5)
    job.cancel()
    assert not job.running
    time.sleep(1.0)
    assert not flower_processes()
    assert "fed-cancel@0.1.0" not in {c["id"] for c in ModelCatalog().cards()}


def test_fedtools_rejects_bad_federations(scene_sites, tmp_path):
    ctx, sites = scene_sites
    logic = FedToolsLogic(ctx)
    with pytest.raises(BadInputError, match="no segment 'Liver'"):
        logic.create_federated_job(sites, segment="Liver")
    with pytest.raises(BadInputError, match="mix"):
        logic.create_federated_job([sites[0], str(tmp_path)])
    with pytest.raises(BadInputError, match="strategy"):
        logic.create_federated_job(sites, strategy="fedsgd")
    with pytest.raises(BadInputError, match="public keys"):
        logic.create_coordinator_job([str(tmp_path / "missing.pub")])
