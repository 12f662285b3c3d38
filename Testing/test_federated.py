"""Federated training on Flower with real processes on loopback: a SuperLink and one SuperNode per site,
TLS and node authentication on, each site reading only its own folder (unit-test phantoms)."""
import json
import os
import subprocess
import time
import tomllib

import numpy as np
import pytest
import torch

from slicerleap.cli import main
from slicerleap.errors import SlicerLeapError
from slicerleap.federated import run_config as rc
from slicerleap.federated.credentials import make_node_keys, make_tls_files
from slicerleap.federated.deployment import APP_DIR, Coordinator, Site, free_port, read_round_log
from slicerleap.federated.local_round import train_local_round
from slicerleap.io import write_volume
from slicerleap.models.catalog import ModelCatalog
from slicerleap.models.networks import build_network, load_model
from slicerleap.models.weights import sha256_of
from slicerleap.segmentation.inference import segment_volume
from slicerleap.segmentation.metrics import overlap_metrics
from slicerleap.segmentation.slice_data import prepare_case

from phantoms import blob_case

# small enough for CI's two cores, large enough that Dice rises over two rounds (lr 0.01, 10 steps a round)
TINY = {"local-iterations": 10, "crop": 32, "batch-size": 4, "channels": "8,16,32", "learning-rate": 0.01}
METRIC_KEYS = {"loss", "num-examples", "site-index", "dice"}


@pytest.fixture(scope="module")
def site_dirs(tmp_path_factory):
    """Three sites, two cases each; site 2's scanner is brighter and noisier (non-IID intensities)."""
    root = tmp_path_factory.mktemp("sites")
    dirs = []
    for site in range(3):
        for case in range(2):
            image, labels = blob_case(100 * site + case)
            if site == 2:
                image = image.with_array(image.array * 1.6 + np.random.default_rng(case).normal(0, 0.05, image.array.shape).astype(np.float32))
            write_volume(image, root / f"site{site}" / "images" / f"case{case}.nrrd")
            write_volume(labels, root / f"site{site}" / "labels" / f"case{case}.nrrd")
        dirs.append(root / f"site{site}")
    return dirs


def test_run_config_defaults_are_the_flower_apps():
    declared = tomllib.loads((APP_DIR / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["flwr"]["app"]["config"]
    assert declared == rc.DEFAULTS
    assert rc.settings({"strategy": "fedprox", "crop": 48.0})["crop"] == 48
    with pytest.raises(ValueError, match="unknown strategy"):
        rc.settings({"strategy": "fedsgd"})
    with pytest.raises(ValueError, match="unknown normalisation"):
        rc.settings({"norm": "group"})
    with pytest.raises(ValueError, match="differential privacy"):
        rc.settings({"norm": "batch", "dp": "local"})
    assert [rc.network_norm(rc.settings(c)) for c in ({}, {"dp": "central"}, {"norm": "instance"})] == ["batch", "instance", "instance"]


def test_cli_refuses_batch_norm_under_differential_privacy_before_starting(tmp_path, capsys):
    assert main(["fed", "simulate", "--sites", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "out"),
                 "--dp", "local", "--set", "norm=batch"]) == 2
    assert "differential privacy" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_model_update_is_the_floating_point_state_and_must_match_the_network():
    """What a site sends: weights and batch-norm statistics, not the integer counters; loading an update from
    another network (missing tensors) is refused instead of silently keeping initial values."""
    from slicerleap.federated.apps import shared_arrays
    from slicerleap.federated.model_update import load_update

    net = build_network(rc.training_config(rc.settings(TINY)).architecture())
    sent = shared_arrays(net).to_torch_state_dict()
    assert any(k.endswith("running_var") for k in sent) and not any(k.endswith("num_batches_tracked") for k in sent)
    other = build_network(rc.training_config(rc.settings({**TINY, "norm": "instance"})).architecture())
    load_update(other, shared_arrays(other).to_torch_state_dict())
    with pytest.raises(ValueError, match="lacks"):
        load_update(net, shared_arrays(other).to_torch_state_dict())


def test_local_learning_rate_decays_over_the_rounds_as_poly():
    """Round 1 trains at the base rate, each later round slower (poly 0.9 over T rounds), never at zero; power 0
    keeps it constant; the rate reaches the trainer's config."""
    s = rc.settings({"num-server-rounds": 5, "learning-rate": 0.01})
    rates = [rc.round_learning_rate(s, t) for t in range(1, 6)]
    assert rates[0] == pytest.approx(0.01)
    assert all(a > b > 0 for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(0.01 * 0.2 ** 0.9)
    assert rc.training_config(s, 3).lr == pytest.approx(0.01 * 0.6 ** 0.9)
    assert rc.round_learning_rate(rc.settings({"num-server-rounds": 5, "learning-rate": 0.01, "lr-power": 0.0}), 5) == 0.01


def test_fedprox_term_keeps_a_site_close_to_the_global_weights(site_dirs):
    s = rc.settings(TINY)
    cases = [prepare_case(image, rc.input_spec(s), labels) for image, labels in map(blob_case, range(2))]
    drift = {}
    for mu in (0.0, 10.0):
        torch.manual_seed(0)
        net = build_network(rc.training_config(s).architecture())
        start = [p.detach().clone() for p in net.parameters()]
        train_local_round(net, cases, rc.training_config(s), "cpu", 8, np.random.default_rng(0), proximal_mu=mu)
        drift[mu] = float(sum(((p.detach() - q) ** 2).sum() for p, q in zip(net.parameters(), start)))
    assert 0 < drift[10.0] < 0.8 * drift[0.0]


def test_three_sites_over_tls_improve_dice_share_only_weights_and_give_a_usable_model(site_dirs, tmp_path, monkeypatch, capsys):
    """`slicerleap fed simulate`: a coordinator and three SuperNodes over loopback, FedProx, two rounds."""
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    settings = [f"{k}={v}" for k, v in TINY.items() if k != "local-iterations"]
    assert main(["fed", "simulate", "--sites", *map(str, site_dirs), "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "fed"),
                 "--rounds", "2", "--strategy", "fedprox", "--local-iterations", str(TINY["local-iterations"]),
                 "--id", "fed-test@0.1.0", "--set", *settings]) == 0
    printed = capsys.readouterr().out
    result = {"status": "finished:completed", "rounds": read_round_log(tmp_path / "out" / "rounds.jsonl"),
              "audit_logs": sorted((tmp_path / "fed").glob("site*-audit.jsonl"))}
    assert printed.count('"phase": "evaluate"') == 3 and "registered fed-test@0.1.0" in printed
    assert result["status"] == "finished:completed"
    evaluations = {r["round"]: r for r in result["rounds"] if r["phase"] == "evaluate"}
    assert sorted(evaluations) == [0, 1, 2] and len(result["audit_logs"]) == 3
    assert all(sorted(int(s["site-index"]) for s in evaluations[r]["sites"]) == [0, 1, 2] for r in evaluations)
    assert evaluations[2]["mean_dice"] > evaluations[0]["mean_dice"] + 0.02
    # an update is the network's floating-point state (weights, batch-norm statistics); integer counters stay home
    state = {k: v for k, v in build_network(rc.training_config(rc.settings(TINY)).architecture()).state_dict().items()
             if v.is_floating_point()}
    assert any("running_mean" in k for k in state)  # the federation's default network is batch-normalised
    model_bytes = sum(v.numel() * v.element_size() for v in state.values())
    assert all(r["bytes_up"] == r["bytes_down"] == 3 * model_bytes and not r["failures"]
               for r in result["rounds"] if r["phase"] == "train")

    # what left each site: the network's parameters under "arrays" and scalar metrics, nothing else
    for audit in result["audit_logs"]:
        entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
        assert {e["message_type"] for e in entries} == {"train", "evaluate"} and len(entries) == 2 + 3
        for e in entries:
            assert not e["configs"] and set(e["metrics"]) == {"metrics"} and set(e["metrics"]["metrics"]) <= METRIC_KEYS
            assert all(isinstance(v, (int, float)) for v in e["metrics"]["metrics"].values())
            if e["message_type"] == "train":
                assert set(e["arrays"]) == {"arrays"}
                assert {k: tuple(v[0]) for k, v in e["arrays"]["arrays"].items()} == {k: tuple(v.shape) for k, v in state.items()}
            else:
                assert not e["arrays"]

    # the global model is in the catalog and segments a scan no site had, on its own grid
    card = ModelCatalog().get("fed-test@0.1.0")
    net = load_model(card, "cpu")
    image, truth = blob_case(999)
    labels, _ = segment_volume(image, card, net, "cpu")
    assert labels.array.shape == image.array.shape and np.allclose(labels.ijk_to_ras, image.ijk_to_ras)
    assert overlap_metrics(labels.array > 0, truth.array > 0)["dice"] > 0.05


# slow (about 4 min on 2 cores): a site killed and restarted mid-federation; run with `pytest -m slow`
@pytest.mark.slow
def test_a_site_that_dies_mid_round_does_not_stop_the_federation_and_can_rejoin(site_dirs, tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    coordinator = Coordinator(tmp_path, tls, node_auth=True).start()
    sites, keys = [], []
    try:
        for index, folder in enumerate(site_dirs):
            key, public = make_node_keys(tmp_path / f"keys{index}", "node")
            coordinator.register_site(public)
            keys.append(key)
            sites.append(Site(coordinator.address, folder, tmp_path, index, tls.ca_cert, key, threads=1).start())
        log = tmp_path / "out" / "rounds.jsonl"
        run = coordinator.submit({**TINY, "local-iterations": 3, "num-server-rounds": 3, "min-sites": 2,
                                  "round-timeout": 120.0, "out-dir": str(tmp_path / "out")})

        def wait_for(round_, phase, limit=300):
            deadline = time.time() + limit
            while not any(e["round"] == round_ and e["phase"] == phase for e in read_round_log(log)):
                assert time.time() < deadline, f"round {round_} {phase} never logged"
                time.sleep(0.3)

        wait_for(0, "evaluate")
        time.sleep(1.0)  # round 1 training is under way
        sites[2].stop()
        wait_for(1, "train")
        sites[2] = Site(coordinator.address, site_dirs[2], tmp_path, 2, tls.ca_cert, keys[2], threads=1).start()
        assert coordinator.wait(run, 600) == "finished:completed"
    finally:
        for site in sites:
            site.stop()
        coordinator.stop()
    entries = {(e["round"], e["phase"]): e for e in read_round_log(log)}
    answered = lambda r, p: sorted(int(s["site-index"]) for s in entries[(r, p)]["sites"])
    assert answered(1, "train") == [0, 1] and entries[(1, "train")]["failures"]
    assert answered(3, "train") == [0, 1, 2]  # the restarted site is back
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_a_site_without_registered_credentials_is_refused(site_dirs, tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    coordinator = Coordinator(tmp_path, tls, node_auth=True).start()
    intruder = plain = None
    try:
        key, _ = make_node_keys(tmp_path / "intruder", "node")  # never registered
        intruder = Site(coordinator.address, site_dirs[0], tmp_path, 9, tls.ca_cert, key)
        with pytest.raises(SlicerLeapError, match="stopped at start-up"):
            intruder.start(timeout=60)
        assert "Failed to activate SuperNode" in intruder.process.log()
        plain = Site(coordinator.address, site_dirs[0], tmp_path, 8)  # no TLS, no key: refused as well
        with pytest.raises(SlicerLeapError):
            plain.start(timeout=20)
    finally:
        for site in (intruder, plain):
            if site:
                site.stop()
        coordinator.stop()


def test_cli_server_and_sites_in_separate_processes(site_dirs, tmp_path):
    """The multi-machine path: each site makes its key pair, the coordinator registers the public keys and
    serves with TLS, the sites join with the CA certificate; the global model lands in the catalog."""
    env = {**os.environ, "SLICERLEAP_HOME": str(tmp_path / "home")}
    cli = lambda *a: subprocess.run(["slicerleap", *a], capture_output=True, text=True, encoding="utf-8", errors="replace", env=env, timeout=120)
    for n in range(2):
        assert cli("fed", "keys", "--out", str(tmp_path / f"keys{n}")).returncode == 0
    port = str(free_port())
    server = subprocess.Popen(["slicerleap", "fed", "server", "--out", str(tmp_path / "out"), "--port", port, "--rounds", "1",
                               "--site-keys", *(str(tmp_path / f"keys{n}" / "node.pub") for n in range(2)),
                               "--local-iterations", "3", "--id", "cli-fed@0.1.0",
                               "--set", *(f"{k}={v}" for k, v in TINY.items() if k != "local-iterations")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace", env=env)
    sites = []
    try:
        assert "coordinator listening" in server.stdout.readline()
        ca = tmp_path / "out" / "coordinator" / "tls" / "ca.crt"
        sites = [subprocess.Popen(["slicerleap", "fed", "site", "--data", str(site_dirs[n]), "--server", f"127.0.0.1:{port}",
                                   "--ca", str(ca), "--key", str(tmp_path / f"keys{n}" / "node"), "--index", str(n),
                                   "--threads", "1", "--workdir", str(tmp_path / f"site{n}")], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(2)]
        output = server.communicate(timeout=600)[0]
    finally:
        for process in [server, *sites]:
            process.terminate()
            process.wait(30)
    assert server.returncode == 0, output
    assert "registered cli-fed@0.1.0" in output and '"round": 1, "phase": "evaluate"' in output
    assert "cli-fed@0.1.0" in cli("models", "list").stdout


def test_site_cases_are_cached_between_clientapp_processes(site_dirs, tmp_path):
    from slicerleap.federated.site_data import load_site_cases

    spec = rc.input_spec(rc.settings({}))
    fresh = load_site_cases(site_dirs[0], spec)
    first = load_site_cases(site_dirs[0], spec, cache_dir=tmp_path)
    again = load_site_cases(site_dirs[0], spec, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == len(fresh) == 2
    for a, b, c in zip(fresh, first, again):
        assert a.name == c.name and np.array_equal(a.image, c.image) and np.array_equal(a.labels, c.labels)
        assert np.allclose(a.grid.ijk_to_ras, c.grid.ijk_to_ras) and np.array_equal(b.labels, c.labels)
    load_site_cases(site_dirs[0], {**spec, "spacing_mm": [2.0, 2.0, None]}, cache_dir=tmp_path)  # another grid: new entries
    assert len(list(tmp_path.glob("*.npz"))) == 4


# slow (about 4 min): two federations; the federation itself runs in every CI (3 sites over TLS); `pytest -m slow`
@pytest.mark.slow
def test_differential_privacy_bounds_the_central_update_and_local_noise_reaches_the_model(site_dirs, tmp_path):
    """Flower's DP on the updates. Central (server-side clipping, noise multiplier 0 so the bound is exact): one
    round moves the global weights by at most the clipping norm. Local (each site's LocalDpMod): the run
    completes and the global model carries the sites' noise, far beyond what a clipped plain update could move it."""
    from safetensors.torch import load_file

    from slicerleap.federated.local_federation import run_local_federation

    s = rc.settings({**TINY, "dp": "central"})
    assert rc.network_norm(s) == "instance"  # "auto" under DP: no batch-norm statistics for the noise to break
    torch.manual_seed(s["seed"])  # the ServerApp's initial weights
    initial = build_network(rc.training_config(s).architecture()).state_dict()
    assert not any("running" in k for k in initial)
    clip = 1e-3
    central = run_local_federation(site_dirs[:2], tmp_path / "central", {**TINY, "num-server-rounds": 1, "min-sites": 2,
                                                                         "dp": "central", "dp-clipping-norm": clip,
                                                                         "dp-noise-multiplier": 0.0},
                                   workdir=tmp_path / "central-work", timeout=600)
    assert central["status"] == "finished:completed", central["status"]
    final = load_file(str(tmp_path / "central" / "model.safetensors"))
    moved = float(np.sqrt(sum(((final[k].double() - initial[k].double()) ** 2).sum() for k in initial)))
    assert 0 < moved <= clip * 1.001, moved

    local = run_local_federation(site_dirs[:2], tmp_path / "local", {**TINY, "num-server-rounds": 1, "min-sites": 2, "dp": "local",
                                                                     "dp-clipping-norm": 1.0, "dp-epsilon": 1.0},
                                 workdir=tmp_path / "local-work", timeout=600)
    assert local["status"] == "finished:completed", local["status"]
    card = json.loads((tmp_path / "local" / "card.json").read_text(encoding="utf-8"))
    assert card["training"]["federated"]["dp"] == "local"
    final = load_file(str(tmp_path / "local" / "model.safetensors"))
    assert all(bool(torch.isfinite(v).all()) for v in final.values())
    moved = float(np.sqrt(sum(((final[k].double() - initial[k].double()) ** 2).sum() for k in initial)))
    assert moved > 1.0  # Gaussian noise of std ~4.8 per weight (epsilon 1): far beyond a clipped (norm <= 1) plain update


# slow (about 3 min): FedICRA end to end; its parts run in every CI (test_fedicra_parts.py); `pytest -m slow`
@pytest.mark.slow
def test_fedicra_personalises_each_sites_decoder_from_sparse_labels(site_dirs, tmp_path):
    """FedICRA over two SuperNodes with different sparse labels (scribbles, boxes): the run completes; each site keeps
    its decoder and, from the aggregation round on, its learned element-wise weights W in its own cache folder
    (never sent); each site receives its personalised model (its site code, its decoder), loadable from its card;
    what left the sites is weights and scalar metrics only. With personal-bn-stats, each site's model normalises with
    its own batch-norm statistics, kept in its cache folder too."""
    from safetensors.torch import load_file

    from slicerleap.federated.local_federation import run_local_federation

    config = {**TINY, "strategy": "fedicra", "num-server-rounds": 2, "aa-from-round": 2, "aa-iterations": 3, "min-sites": 2,
              "personal-bn-stats": 1}
    model_dirs = [tmp_path / f"site{n}-model" for n in range(2)]
    result = run_local_federation(site_dirs[:2], tmp_path / "out", config, workdir=tmp_path / "fed", timeout=900,
                                  label_kinds=["scribble", "box"], model_dirs=model_dirs)
    assert result["card"]["architecture"]["name"] == "slicerleap.FedICRAUNet"
    assert [(r["round"], r["phase"]) for r in result["rounds"]] == [(0, "evaluate"), (1, "train"), (1, "evaluate"),
                                                                   (2, "train"), (2, "evaluate")]
    assert all(len(r["sites"]) == 2 and not r["failures"] for r in result["rounds"])
    personal = [load_file(str(p)) for p in sorted((tmp_path / "fed").glob("site*-cache/fedicra-run*-site*.safetensors"))]
    assert len(personal) == 2
    for state in personal:
        weights = [v for k, v in state.items() if k.startswith("weight.")]
        assert weights and all(float(w.min()) >= 0 and float(w.max()) <= 1 for w in weights)
        assert any(k.startswith("decoder.upcat_") for k in state) and not any(k.startswith("decoder.down_") for k in state)
        assert any(k.startswith("stats.down_") and k.endswith("running_var") for k in state)
    cards = [json.loads((d / "card.json").read_text(encoding="utf-8")) for d in model_dirs]
    assert [c["id"] for c in cards] == [f"fed-unet-site{n}@1.0.0" for n in range(2)]
    assert [c["architecture"]["args"]["site"] for c in cards] == [0, 1]
    models = [load_model({**c, "_path": str(d / "model.safetensors"), "sha256": sha256_of(d / "model.safetensors")}, "cpu")
              for c, d in zip(cards, model_dirs)]
    decoder_key = next(k for k in models[0].state_dict() if k.startswith("upcat_1."))
    assert not torch.equal(models[0].state_dict()[decoder_key], models[1].state_dict()[decoder_key])  # personalised
    encoder_statistics = next(k for k in models[0].state_dict() if k.startswith("down_1.") and k.endswith("running_mean"))
    for model, state in zip(models, personal):  # the site's own statistics, not the average the coordinator holds
        assert torch.equal(model.state_dict()[encoder_statistics], state[f"stats.{encoder_statistics}"])
    assert not torch.equal(models[0].state_dict()[encoder_statistics], models[1].state_dict()[encoder_statistics])
    for audit in result["audit_logs"]:
        for entry in (json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()):
            assert set(entry["metrics"].get("metrics", {})) <= METRIC_KEYS
            assert all(not k.startswith("weight.") for record in entry["arrays"].values() for k in record)
