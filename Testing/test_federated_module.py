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
    with pytest.raises(BadInputError, match="normalisation 'group'"):
        logic.create_federated_job(sites, settings={"norm": "group"})
    with pytest.raises(BadInputError, match="public keys"):
        logic.create_coordinator_job([str(tmp_path / "missing.pub")])


def test_fedtools_coordinates_and_joins_as_a_site_from_the_panel_logic(scene_sites, tmp_path, monkeypatch):
    """The panel's two deployment roles on one machine: a coordinator job for two registered site keys, and two site
    jobs joining it (scene cases, and a data folder) with the address and CA certificate the coordinator reports.
    Every job ends by itself when the run is over; the coordinator registers the global model, each site receives
    the same final weights; each site's audit trail shows only weights and scalar metrics left it."""
    from slicerleap.federated.deployment import free_port
    from slicerleap.io import write_volume

    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    ctx, sites = scene_sites
    logic = FedToolsLogic(ctx)
    keys = [logic.create_site_keys(tmp_path / f"keys{n}", f"site{n}") for n in range(2)]
    coordinator = logic.start_coordinator([public for _, public in keys], port=free_port(), rounds=1, local_iterations=3,
                                          model_id="fed-joined@0.1.0", settings=TINY)
    records = []
    deadline = time.time() + 120
    while not any("address" in r for r in records):
        assert coordinator.running and time.time() < deadline, "the coordinator reported no address"
        records += coordinator.poll()
        time.sleep(0.3)
    ready = next(r for r in records if "address" in r)
    folder = tmp_path / "site1-data"  # the second site reads a data folder: images/ + labels/ paired by name
    for case in range(2):
        image, labels = blob_case(50 + case)
        write_volume(image, folder / "images" / f"case{case}.nrrd")
        write_volume(labels, folder / "labels" / f"case{case}.nrrd")
    joined = [logic.join_federation(sites[0], ready["address"], ready["ca_cert"], keys[0][0], site_index=0),
              logic.join_federation(folder, ready["address"], ready["ca_cert"], keys[1][0], site_index=1)]
    site_records = [[], []]
    deadline = time.time() + 600
    while coordinator.running or any(job.running for job in joined):
        assert time.time() < deadline, "the federation did not finish"
        records += coordinator.poll()
        for job, got in zip(joined, site_records):
            got += job.poll()
        time.sleep(0.5)
    card = coordinator.finish()["model"]
    received = [job.finish()["model"] for job in joined]  # registered in this computer's catalog (same id: the last one wins)
    assert card["id"] == "fed-joined@0.1.0" and all(r["id"] == card["id"] for r in received)
    assert [(r["round"], r["phase"]) for r in round_history(records)] == [(0, "evaluate"), (1, "train"), (1, "evaluate")]
    from safetensors.torch import load_file

    server_weights = load_file(card["_path"])
    for site in received:
        site_weights = load_file(site["_path"])
        assert set(site_weights) == set(server_weights)
        assert all(np.allclose(site_weights[k].numpy(), server_weights[k].numpy()) for k in server_weights)
    for got in site_records:
        logs = [r["site_log"] for r in got if "site_log" in r]
        assert [entry["phase"] for entry in logs] == ["evaluate", "train", "evaluate"]
        assert "loss" in logs[1] and "dice" in logs[2]
    assert not flower_processes()


def test_fedtools_rejects_bad_site_settings(scene_sites, tmp_path):
    ctx, sites = scene_sites
    logic = FedToolsLogic(ctx)
    private, _ = logic.create_site_keys(tmp_path / "keys", "site")
    ca = tmp_path / "ca.crt"
    ca.write_text("not used", encoding="utf-8")
    for args, message in [(("not an address", ca, private), "not a coordinator address"),
                          (("127.0.0.1:9092", tmp_path / "none.crt", private), "CA certificate"),
                          (("127.0.0.1:9092", ca, tmp_path / "none"), "private key")]:
        with pytest.raises(BadInputError, match=message):
            logic.create_site_job(sites[0], *args)
    with pytest.raises(BadInputError, match="does not exist"):
        logic.create_site_job(str(tmp_path / "no-folder"), "127.0.0.1:9092", ca, private)


def test_round_chart_tables_every_site_and_plots_their_dice(scene_sites):
    """The panel's live plot: a table node with each site's Dice and loss per round (NaN where a site did not
    answer), participation and failures, and a chart with the mean and one series per site; updated in place."""
    import slicer.util

    ctx, _ = scene_sites
    logic = FedToolsLogic(ctx)
    history = [{"round": 0, "phase": "evaluate", "sites": [{"dice": 0.1, "site-index": 0.0}, {"dice": 0.3, "site-index": 1.0}],
                "failures": [], "mean_dice": 0.2},
               {"round": 1, "phase": "train", "sites": [{"loss": 0.8, "site-index": 0.0}], "failures": ["site 1 timed out"]},
               {"round": 1, "phase": "evaluate", "sites": [{"dice": 0.5, "site-index": 0.0}, {"dice": 0.6, "site-index": 1.0}],
                "failures": [], "mean_dice": 0.55}]
    table, chart = logic.update_round_chart(history[:1])
    assert chart.GetNumberOfPlotSeriesNodes() == 3 and table.GetNumberOfRows() == 1
    same_table, same_chart = logic.update_round_chart(history, table, chart)
    assert (same_table, same_chart) == (table, chart) and chart.GetNumberOfPlotSeriesNodes() == 3
    column = lambda name: slicer.util.arrayFromTableColumn(table, name)
    np.testing.assert_allclose(column("Round"), [0, 1])
    np.testing.assert_allclose(column("Mean Dice"), [0.2, 0.55])
    np.testing.assert_allclose(column("Site 1 Dice"), [0.3, 0.6])
    assert np.isnan(column("Site 1 loss")).all() and column("Site 0 loss")[1] == pytest.approx(0.8)
    np.testing.assert_allclose(column("Sites trained"), [0, 1])
    np.testing.assert_allclose(column("Failures"), [0, 1])
    series = {chart.GetNthPlotSeriesNode(i).GetYColumnName() for i in range(3)}
    assert series == {"Mean Dice", "Site 0 Dice", "Site 1 Dice"}
    # a site's own replies (site job records) plot as that site's curve
    site_records = [{"site_log": {"phase": "evaluate", "count": 1, "dice": 0.2}}, {"site_log": {"phase": "train", "count": 1, "loss": 0.7}},
                    {"site_log": {"phase": "evaluate", "count": 2, "dice": 0.4}}]
    entries = logic.round_history(site_records, site_index=3)
    assert [(e["round"], e["phase"]) for e in entries] == [(0, "evaluate"), (1, "train"), (1, "evaluate")]
    site_table, _ = logic.update_round_chart(entries)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(site_table, "Site 3 Dice"), [0.2, 0.4])


def test_panel_sites_from_case_site_numbers():
    """The panel's simulated sites: the listed cases grouped by their site numbers, in number order; cases listed
    before site numbers existed belong to site 0."""
    cases = ["a", "b", "c", "d"]
    assert FedToolsLogic.sites_from_numbers(cases, [2, 0, 2, 0]) == [["b", "d"], ["a", "c"]]
    assert FedToolsLogic.sites_from_numbers(cases, [1, 1]) == [["c", "d"], ["a", "b"]]
