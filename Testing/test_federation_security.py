"""Nobody but the registered sites joins a federation, sites run nothing but SlicerLeap's app, and only the declared
update leaves a site (issue 30). Real Flower processes on loopback; the SuperLink's interfaces are told apart by the
addresses their sockets are bound to, since on loopback a 127.0.0.1-bound interface is reachable too."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from slicerleap.cli import main
from slicerleap.errors import BadInputError, SlicerLeapError
from slicerleap.federated import run_config as rc
from slicerleap.federated.app_pin import app_hash, bundle_app, slicerleap_app_hash
from slicerleap.federated.credentials import make_node_keys, make_tls_files
from slicerleap.federated.deployment import APP_DIR, Coordinator, Site, _toml_pairs, free_port
from slicerleap.federated.joining import join_federation
from slicerleap.io import write_volume

from phantoms import blob_case

TINY = {"local-iterations": 2, "crop": 32, "batch-size": 2, "channels": "8,16", "num-server-rounds": 1, "min-sites": 1,
        "round-timeout": 120.0}
METRIC_KEYS = {"loss", "num-examples", "site-index", "dice"}


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    for case in range(2):
        image, labels = blob_case(case)
        write_volume(image, root / "images" / f"case{case}.nrrd")
        write_volume(labels, root / "labels" / f"case{case}.nrrd")
    return root


def _listening(pid: int) -> set:
    """(address, port) of every listening TCP socket of a process and its children."""
    parent = psutil.Process(pid)
    return {(c.laddr.ip, c.laddr.port) for p in [parent, *parent.children(recursive=True)]
            for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def _outsider_cli(tmp_path: Path, address: str, ca_cert: Path, *args: str) -> subprocess.CompletedProcess:
    """The Flower CLI of someone holding only ca.crt, pointed at `address`."""
    home = tmp_path / "outsider-flwr"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f'[superlink]\ndefault = "x"\n\n[superlink.x]\naddress = "{address}"\n'
                                      f'root-certificates = "{ca_cert}"\n', encoding="utf-8")
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_DISABLE_UPDATE_CHECK": "1"}
    flwr = str(Path(sys.executable).with_name("flwr"))
    return subprocess.run([flwr, *args], capture_output=True, text=True, encoding="utf-8", errors="replace", env=env, timeout=120)


def test_registration_and_run_submission_are_not_served_to_the_network(site_dir, tmp_path):
    """A coordinator listening on every interface: its only socket off loopback is the Fleet API; an outsider with
    ca.crt is refused registration (403), run submission (403) and the ServerApp I/O API there, and an unregistered
    SuperNode cannot join. The coordinator's own CLI registers and lists over 127.0.0.1."""
    tls = make_tls_files(tmp_path / "tls")
    coordinator = Coordinator(tmp_path / "coord", tls, node_auth=True, host="0.0.0.0").start()
    intruder = None
    try:
        sockets = _listening(coordinator.superlink.process.pid)
        assert sockets == {("0.0.0.0", coordinator.port), ("127.0.0.1", coordinator.control_port)}, sockets
        assert coordinator.control_port != coordinator.port

        _, site_public = make_node_keys(tmp_path / "site-keys", "node")
        coordinator.register_site(site_public, "hospital")
        outsider_key, outsider_public = make_node_keys(tmp_path / "outsider-keys", "node")
        public = f"127.0.0.1:{coordinator.port}"  # the network-facing socket, reached over loopback
        registered = _outsider_cli(tmp_path, public, tls.ca_cert, "supernode", "register", str(outsider_public), "x")
        assert registered.returncode != 0 and "403" in registered.stdout + registered.stderr
        submitted = _outsider_cli(tmp_path, public, tls.ca_cert, "run", str(APP_DIR), "x", "--format", "json")
        assert not json.loads(submitted.stdout)["success"] and "403" in submitted.stdout  # --format json exits 0
        with httpx.Client(verify=str(tls.ca_cert), timeout=30) as http:  # ServerApp I/O: refused; Fleet API: served
            assert http.post(f"https://{public}/v1/runtime/acquire-task", content=b"").status_code == 403
            assert http.post(f"https://{public}/v1/control/list-nodes", content=b"").status_code == 403
            assert http.get(f"https://{public}/docs").status_code == 403
            assert http.post(f"https://{public}/v1/fleet/get-run", content=b"").status_code != 403

        nodes = json.loads(coordinator._cli("supernode", "list", "slicerleap", "--format", "json"))["nodes"]
        assert len(nodes) == 1  # the hospital's key only
        assert not json.loads(coordinator._cli("list", "slicerleap", "--format", "json")).get("runs")

        intruder = Site(public, site_dir, tmp_path, 9, tls.ca_cert, outsider_key, connect_timeout=20)
        with pytest.raises(SlicerLeapError, match="stopped at start-up"):
            intruder.start()
        assert "SuperNode ID" not in intruder.process.log()
    finally:
        if intruder:
            intruder.stop()
        coordinator.stop()


def test_the_pin_covers_the_apps_files_not_the_zip_encoding(tmp_path):
    ours = bundle_app()
    assert app_hash(ours) == slicerleap_app_hash()

    def rezip(fab: bytes, change=None, extra=None, level=zipfile.ZIP_STORED) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(fab)) as src, zipfile.ZipFile(out, "w", level) as dst:
            for info in src.infolist():
                data = src.read(info)
                dst.writestr(info.filename, change(info.filename, data) if change else data)
            if extra:
                dst.writestr(*extra)
        return out.getvalue()

    assert app_hash(rezip(ours)) == app_hash(ours)  # stored instead of deflated: the same app
    one_byte = lambda name, data: data.replace(b"Plain", b"plain", 1) if name.endswith(".py") else data
    assert app_hash(rezip(ours, one_byte)) != app_hash(ours)
    assert app_hash(rezip(ours, extra=("helper.py", b"import os"))) != app_hash(ours)


# An outsider's app under our app's name: its ClientApp would send back the site's data folder listing.
SNOOPING_APP = """
import os, time
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

server_app = ServerApp()
client_app = ClientApp()


@server_app.main()
def main(grid, context):
    while not (nodes := list(grid.get_node_ids())):
        time.sleep(0.5)
    replies = grid.send_and_receive([Message(RecordDict(), dst_node_id=n, message_type="query") for n in nodes], timeout=60)
    with open(context.run_config["out"], "w") as f:
        for reply in replies:
            f.write(("error: " + reply.error.reason) if reply.has_error() else "got: " + str(dict(reply.content["files"])))


@client_app.query()
def query(msg, context):
    listing = ",".join(os.listdir(str(context.node_config["data-dir"])))
    return Message(RecordDict({"files": ConfigRecord({"listing": listing})}), reply_to=msg)
"""


def test_a_site_refuses_any_other_app_before_its_code_runs_and_runs_ours(site_dir, tmp_path):
    """Two runs reach one site: SlicerLeap's app and an outsider's app under the same name that asks for the site's
    file listing. The SuperNode refuses the outsider's app with a clear log line before installing it or starting
    any of its code, so the outsider receives only the refusal; ours is installed and answers."""
    foreign = tmp_path / "foreign" / "slicerleap_fed_app"
    foreign.mkdir(parents=True)
    pyproject = (APP_DIR / "pyproject.toml").read_text(encoding="utf-8").replace('out-dir = ""', 'out-dir = ""\nout = ""')
    (foreign / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    (foreign / "slicerleap_fed_app.py").write_text(SNOOPING_APP, encoding="utf-8")
    foreign_fab_hash = hashlib.sha256(bundle_app(foreign)).hexdigest()  # what Flower calls the app's hash
    ours_fab_hash = hashlib.sha256(bundle_app()).hexdigest()
    stolen = tmp_path / "what-the-outsider-got.txt"

    tls = make_tls_files(tmp_path / "tls")
    coordinator = Coordinator(tmp_path, tls, node_auth=True).start()
    site = None
    audit = tmp_path / "audit.jsonl"
    try:
        key, public = make_node_keys(tmp_path / "keys", "node")
        coordinator.register_site(public)
        site = Site(coordinator.address, site_dir, tmp_path, 0, tls.ca_cert, key, audit_log=audit, threads=1).start()
        reply = json.loads(coordinator._cli("run", str(foreign), "slicerleap", "--format", "json",
                                            "--run-config", _toml_pairs({"out": str(stolen)})))
        foreign_run = int(reply["run-id"])
        ours = coordinator.submit({**TINY, "out-dir": str(tmp_path / "out")})
        deadline = time.time() + 240
        while not stolen.exists() or not audit.exists():  # the outsider's answer; our round-0 evaluation reply
            assert site.process.alive and time.time() < deadline, site.process.log()[-2000:]
            time.sleep(0.5)
        log = site.process.log()
    finally:
        if site:
            site.stop()
        coordinator.stop()
    assert f"refused app {foreign_fab_hash}: not the SlicerLeap federated app" in log
    assert stolen.read_text(encoding="utf-8").startswith("error: refused: not the SlicerLeap federated app")
    installed = [p.name for p in (tmp_path / "site0-flwr-home" / "apps").iterdir()]
    assert installed and all(name.endswith(ours_fab_hash[:8]) for name in installed), installed
    foreign_part = [part.split("[RUN ")[0] for part in log.split(f"[RUN {foreign_run}]")[1:]]
    assert foreign_part and not any("flwr-clientapp" in part for part in foreign_part)
    assert f"[RUN {ours}]" in log and json.loads(audit.read_text(encoding="utf-8").splitlines()[0])["message_type"] == "evaluate"


def test_what_leaves_a_site_is_the_declared_update_and_metrics(site_dir, tmp_path, monkeypatch):
    """The ClientApp's replies themselves (what the SuperNode sends), not only the audit log: a training reply
    holds the network's floating-point state (weights, batch-norm statistics) under "arrays" and the declared
    scalar metrics; an evaluation reply holds metrics only; the audit log records exactly that."""
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from slicerleap.federated.apps import client_app, shared_arrays
    from slicerleap.models.networks import build_network

    for name in ("_run_id", "_node_id", "_task_id"):  # a ClientApp process has these set by Flower
        monkeypatch.setattr(TaskIdentity, name, 1)
    net = build_network(rc.architecture(rc.settings(TINY)))
    declared = {k: tuple(v.shape) for k, v in net.state_dict().items() if v.is_floating_point()}
    assert any(k.endswith("running_var") for k in declared)
    audit = tmp_path / "audit.jsonl"
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config=TINY,
                      node_config={"data-dir": str(site_dir), "site-index": 0, "audit-log": str(audit), "cache-dir": str(tmp_path / "cache")})
    replies = {}
    for kind in ("train", "evaluate"):
        message = Message(RecordDict({"arrays": shared_arrays(net), "config": ConfigRecord({"server-round": 1, "local-iterations": 2})}),
                          dst_node_id=7, message_type=kind)
        replies[kind] = client_app(message, context)
        assert not replies[kind].has_error()

    train = replies["train"].content
    assert set(train.keys()) == {"arrays", "metrics"} and not train.config_records
    assert {k: tuple(a.shape) for k, a in train["arrays"].items()} == declared
    assert all(str(a.dtype) == "float32" for a in train["arrays"].values())
    evaluate = replies["evaluate"].content
    assert set(evaluate.keys()) == {"metrics"}
    for content in (train, evaluate):
        assert set(content["metrics"]) <= METRIC_KEYS
        assert all(isinstance(v, (int, float)) and np.isfinite(v) for v in content["metrics"].values())
    entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [e["message_type"] for e in entries] == ["train", "evaluate"]
    assert {k: tuple(v[0]) for k, v in entries[0]["arrays"]["arrays"].items()} == declared
    assert entries[0]["metrics"]["metrics"] == dict(train["metrics"]) and not entries[1]["arrays"]


def test_flowers_own_children_find_their_programs_without_the_venv_on_path(tmp_path, monkeypatch):
    """Flower starts flower-superexec, flwr-serverapp and flwr-clientapp by name: the coordinator and the sites give
    them this interpreter's folder on PATH, so a SuperLink starts even when the caller's PATH lacks it."""
    bin_dir = os.path.dirname(sys.executable)
    stripped = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "flower-superexec").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(stripped))
    assert shutil.which("flower-superexec") is None
    tls = make_tls_files(tmp_path / "tls")
    coordinator = Coordinator(tmp_path, tls)
    site = Site("127.0.0.1:1", tmp_path, tmp_path, 0, tls.ca_cert)
    assert coordinator.env["PATH"].split(os.pathsep)[0] == bin_dir == site.env["PATH"].split(os.pathsep)[0]
    try:
        coordinator.start()  # waits for "Starting Flower SuperExec": the SuperLink's child was found
    finally:
        coordinator.stop()


def test_a_site_gives_up_on_a_coordinator_it_cannot_reach(site_dir, tmp_path):
    key, _ = make_node_keys(tmp_path / "keys", "node")
    ca = make_tls_files(tmp_path / "tls").ca_cert
    address = f"127.0.0.1:{free_port()}"  # nobody listens there
    started = time.time()
    with pytest.raises(SlicerLeapError, match=f"Cannot reach the coordinator at {address} for 3 s") as refused:
        join_federation(site_dir, address, ca, key, tmp_path / "work", tmp_path / "model", connect_timeout=3)
    assert time.time() - started < 45 and "ask the coordinator" in refused.value.fix
    assert not (tmp_path / "model" / "card.json").exists()
    assert "Giving up reconnection" in (tmp_path / "work" / "logs" / "site0.log").read_text(encoding="utf-8")
    from slicerleap.cli import build_parser

    assert build_parser().parse_args(["fed", "site", "--data", "d", "--server", "s:1", "--ca", "c", "--key", "k"]).connect_timeout == 120


def test_a_site_whose_coordinator_goes_away_stops_with_a_clear_message(site_dir, tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    coordinator = Coordinator(tmp_path, tls).start()
    key, public = make_node_keys(tmp_path / "keys", "node")
    try:
        coordinator.register_site(public)
        site = Site(coordinator.address, site_dir, tmp_path, 0, tls.ca_cert, key, connect_timeout=3).start()
    finally:
        coordinator.stop()
    try:
        deadline = time.time() + 45
        while site.process.alive:
            assert time.time() < deadline, site.process.log()[-1500:]
            time.sleep(0.5)
        assert site.gave_up() and "Cannot reach the coordinator" in str(site.unreachable())
    finally:
        site.stop()


def test_fed_keys_never_overwrites_a_private_key_without_force(tmp_path, capsys):
    folder = tmp_path / "keys"
    assert main(["fed", "keys", "--out", str(folder)]) == 0
    private = folder / "node"
    before = private.read_bytes()
    capsys.readouterr()
    assert main(["fed", "keys", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(private) in err and "--force" in err
    assert private.read_bytes() == before
    with pytest.raises(BadInputError):
        make_node_keys(folder, "node")
    assert main(["fed", "keys", "--out", str(folder), "--force"]) == 0
    assert private.read_bytes() != before and (folder / "node.pub").exists()
