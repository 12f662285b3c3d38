"""Flower's deployment runtime driven from SlicerLeap: a SuperLink (coordinator), SuperNodes (sites) and
`flwr run` submissions, each a real process talking over the network (loopback on one machine).

Nothing here moves data or aggregates weights: Flower does. This module only starts Flower's own
programs with the right flags, writes the Flower CLI's connection file (in a private FLWR_HOME, never the
user's ~/.flwr), and waits on the run.

Both run through SlicerLeap's launchers around Flower's own programs: the SuperLink serves node registration,
run submission and ServerApp I/O on loopback only (guarded_superlink.py), and a site's SuperNode runs only
the SlicerLeap federated app (guarded_supernode.py, app_pin.py)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import BadInputError, SlicerLeapError
from .app_pin import APP_DIR, slicerleap_app_hash
from .credentials import TlsFiles

CONNECTION = "slicerleap"
LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT = 120.0  # s a site keeps trying to reach its coordinator before giving up


def read_json_lines(path: str | Path) -> list[dict]:
    """A JSON-lines log (empty when the file does not exist yet)."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def read_round_log(path: str | Path) -> list[dict]:
    """The ServerApp's round log (apps._RoundLog): one dict per round and phase."""
    return read_json_lines(path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _toml_pairs(values: dict) -> str:
    """{"a": 1, "b": "x"} -> 'a=1 b="x"' (Flower's --run-config / --node-config syntax)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return json.dumps(str(v)) if isinstance(v, (str, Path)) else repr(v)
    return " ".join(f"{k}={value(v)}" for k, v in values.items())


def _flower_bin(name: str) -> str:
    """Flower's console scripts from the running interpreter's environment (Slicer's Python included)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def flower_env(home: Path) -> dict:
    """The environment of Flower's programs: a private FLWR_HOME, and this interpreter's folder first on PATH,
    because Flower starts its own children (flower-superexec, flwr-serverapp, flwr-clientapp) by name."""
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONIOENCODING": "utf-8",  # Flower prints non-ASCII whatever the locale
           "PATH": os.pathsep.join(p for p in [os.path.dirname(sys.executable), os.environ.get("PATH")] if p)}
    for legacy in ("FLWR_INTERNAL_GRPC_CONTROL_API", "FLWR_INTERNAL_GRPC_FLEET_API"):
        env.pop(legacy, None)  # Flower's legacy gRPC servers would listen on 0.0.0.0
    return env


def _launcher(module: str) -> list[str]:
    return [sys.executable, "-m", f"slicerleap.federated.{module}"]


class FlowerProcess:
    """One Flower program in its own process group, its output in `log_path`."""

    def __init__(self, args: list[str], log_path: Path, env: dict, name: str | None = None):
        self.args, self.log_path, self.name = args, Path(log_path), name or Path(args[0]).name
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace", encoding="utf-8") if self.log_path.exists() else ""

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while text not in self.log():
            if not self.alive:
                raise SlicerLeapError(f"{self.name} stopped at start-up: {self.log()[-800:]}",
                                      "Check the address, port and certificate paths.")
            if time.time() > deadline:
                raise SlicerLeapError(f"{self.name} did not start within {timeout:.0f} s.", f"See {self.log_path}.")
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the whole process group (Flower starts ServerApp/ClientApp children)."""
        if self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue


class Coordinator:
    """The server side: a SuperLink whose Fleet API (all that sites call) listens on `host:port` (TLS unless
    `tls` is None); its Control and Runtime APIs listen on 127.0.0.1:`control_port` only, where the Flower CLI
    here submits runs and registers sites. With `node_auth`, only SuperNodes whose public key was registered
    (`register_site`) may connect. The TLS certificate must name 127.0.0.1 (the CLI connects there)."""

    def __init__(self, workdir: str | Path, tls: TlsFiles | None, node_auth: bool = True, host: str = "127.0.0.1",
                 port: int | None = None):
        if node_auth and tls is None:
            raise BadInputError("Site authentication needs TLS.", "Give TLS files, or turn authentication off for a trial run.")
        self.workdir, self.tls, self.node_auth, self.host = Path(workdir), tls, node_auth, host
        self.port = port or free_port(host)
        self.control_port = free_port(LOOPBACK)
        self.home = self.workdir / "flwr-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = flower_env(self.home)
        connection = {"address": f"{LOOPBACK}:{self.control_port}"}
        connection.update({"root-certificates": str(tls.ca_cert)} if tls else {"insecure": True})
        lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in connection.items()]
        (self.home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.superlink: FlowerProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "Coordinator":
        args = [*_launcher("guarded_superlink"), "--fleet-host", self.host, "--fleet-port", str(self.port),
                "--host", LOOPBACK, "--port", str(self.control_port),
                "--disable-runtime-dependency-installation"]  # the app's code is the installed slicerleap; nothing is fetched
        if self.tls:
            args += ["--ssl-ca-certfile", str(self.tls.ca_cert), "--ssl-certfile", str(self.tls.server_cert),
                     "--ssl-keyfile", str(self.tls.server_key)]
        else:
            args.append("--insecure")
        if self.node_auth:
            args.append("--enable-supernode-auth")
        self.superlink = FlowerProcess(args, self.workdir / "logs" / "superlink.log", self.env, "flower-superlink")
        self.superlink.wait_for("Starting Flower SuperExec", timeout)
        return self

    def _cli(self, *args: str, timeout: float = 120.0) -> str:
        done = subprocess.run([_flower_bin("flwr"), *args], capture_output=True, text=True, encoding="utf-8", errors="replace", env={**self.env, "COLUMNS": "200"},
                              timeout=timeout)
        if done.returncode != 0:
            raise SlicerLeapError(f"flwr {args[0]} failed: {(done.stdout + done.stderr)[-800:]}", f"See {self.workdir / 'logs'}.")
        return done.stdout

    def register_site(self, public_key: str | Path, name: str = "") -> None:
        self._cli("supernode", "register", str(public_key), CONNECTION, *(["--name", name] if name else []))

    def submit(self, run_config: dict) -> int:
        """Start a run of SlicerLeap's Flower App with `run_config` overrides; returns the run id."""
        out = self._cli("run", str(APP_DIR), CONNECTION, "--run-config", _toml_pairs(run_config), "--format", "json")
        reply = json.loads(out)
        if not reply.get("success", True) or "run-id" not in reply:
            raise SlicerLeapError(f"The SuperLink did not accept the run: {out[-800:]}", f"See {self.workdir / 'logs'}.")
        return int(reply["run-id"])

    def run_status(self, run_id: int) -> str:
        """Flower's run status, e.g. 'running' or 'finished:completed' / 'finished:failed'."""
        reply = json.loads(self._cli("list", CONNECTION, "--run-id", str(run_id), "--format", "json"))
        runs = reply.get("runs") or []
        return str(runs[0].get("status", "unknown")) if runs else "unknown"

    def wait(self, run_id: int, timeout: float, poll: float = 1.0, on_poll=None, done_file: Path | None = None,
             status_every: float = 15.0) -> str:
        """Block until the run finishes (status 'finished:...'); `on_poll()` is called every `poll` s. Each
        status query starts the Flower CLI (a second of CPU), so it is asked every `status_every` s, and
        every `poll` s once `done_file` (what the ServerApp writes last) exists."""
        deadline, asked = time.time() + timeout, 0.0
        while True:
            if time.time() - asked >= status_every or (done_file is not None and done_file.exists()):
                status, asked = self.run_status(run_id), time.time()
                if status.startswith("finished"):
                    return status
            if time.time() > deadline:
                raise SlicerLeapError(f"Federated run {run_id} did not finish within {timeout:.0f} s (status {status}).",
                                      "Check that enough sites are connected, or raise the time limit.")
            if on_poll:
                on_poll()
            time.sleep(poll)

    def follow(self, run_id: int, round_log: Path, on_round=None, should_stop=lambda: False, timeout: float = 24 * 3600.0) -> str:
        """wait() for the run, calling `on_round(entry)` for each new line of its round log; a true
        `should_stop()` raises (the caller's finally stops the processes)."""
        seen = 0

        def poll():
            nonlocal seen
            entries = read_round_log(round_log)
            for entry in entries[seen:]:
                if on_round:
                    on_round(entry)
            seen = len(entries)
            if should_stop():
                raise SlicerLeapError("Federated training was stopped.", "")
        status = self.wait(run_id, timeout, on_poll=poll, done_file=Path(round_log).with_name("card.json"))
        poll()
        return status

    def stop(self) -> None:
        if self.superlink:
            self.superlink.stop()


class Site:
    """One site's SuperNode: reads only `data_dir`; connects to the coordinator's address `superlink`
    (host:port); runs only the app whose files hash as the SlicerLeap app installed here (app_pin.py);
    gives up when the coordinator cannot be reached for `connect_timeout` s, at start or later."""

    def __init__(self, superlink: str, data_dir: str | Path, workdir: str | Path, index: int = 0,
                 root_cert: str | Path | None = None, private_key: str | Path | None = None,
                 audit_log: str | Path | None = None, threads: int | None = None, model_dir: str | Path | None = None,
                 label_kind: str | None = None, connect_timeout: float = CONNECT_TIMEOUT):
        data_dir = Path(data_dir).resolve()
        if not data_dir.is_dir():
            raise BadInputError(f"The site data folder '{data_dir}' does not exist.", "Give the folder holding images/ and labels/.")
        if connect_timeout <= 0:
            raise BadInputError(f"The connection time limit must be positive (got {connect_timeout} s).", "Give e.g. 120.")
        self.workdir, self.index, self.superlink, self.connect_timeout = Path(workdir), index, superlink, float(connect_timeout)
        self.port = free_port()
        node_config = {"data-dir": str(data_dir), "site-index": index, "cache-dir": str((self.workdir / f"site{index}-cache").resolve())}
        if audit_log:
            node_config["audit-log"] = str(Path(audit_log).resolve())
        if model_dir:  # the site keeps the final global model here
            node_config["model-dir"] = str(Path(model_dir).resolve())
        if label_kind:  # FedICRA: this site's sparse-label kind
            from .fedicra.weak_labels import KINDS

            if label_kind not in KINDS:
                raise BadInputError(f"Unknown label kind '{label_kind}'.", f"Use one of: {', '.join(KINDS)}.")
            node_config["label-kind"] = label_kind
        self.args = [*_launcher("guarded_supernode"), "--slicerleap-app-hash", slicerleap_app_hash(),
                     "--superlink", superlink, "--port", str(self.port), "--max-wait-time", f"{self.connect_timeout:g}",
                     "--node-config", _toml_pairs(node_config)]
        self.args += ["--root-certificates", str(root_cert)] if root_cert else ["--insecure"]
        if private_key:
            self.args += ["--auth-supernode-private-key", str(private_key)]
        self.env = flower_env((self.workdir / f"site{index}-flwr-home").resolve())  # not the user's ~/.flwr
        if threads:
            self.env["OMP_NUM_THREADS"] = str(threads)
        self.process: FlowerProcess | None = None

    def unreachable(self, seconds: float | None = None) -> SlicerLeapError:
        seconds = self.connect_timeout if seconds is None else seconds
        return SlicerLeapError(f"Cannot reach the coordinator at {self.superlink} for {seconds:.0f} s.",
                               "Check the address and port the coordinator gave you, that its `slicerleap fed server` is "
                               "running and its port open to this site, and that --ca is its ca.crt; or ask the coordinator.")

    def gave_up(self) -> bool:
        """The SuperNode stopped trying to reach the coordinator (Flower's retry limit, --max-wait-time)."""
        return self.process is not None and "Giving up reconnection" in self.process.log()

    def start(self, timeout: float | None = None, wait: bool = True) -> "Site":
        """Start the SuperNode; with `wait`, until it is connected: at most `timeout` s (default: the
        connection time limit plus start-up), else the coordinator is unreachable."""
        self.process = FlowerProcess(self.args, self.workdir / "logs" / f"site{self.index}.log", self.env, "flower-supernode")
        if not wait:
            return self
        limit = timeout if timeout is not None else self.connect_timeout + 30.0
        deadline = time.time() + limit
        while "SuperNode ID" not in self.process.log():
            if self.gave_up() or time.time() > deadline:
                self.stop()
                raise self.unreachable(min(limit, self.connect_timeout))
            if not self.process.alive:  # refused: an unregistered key, a bad certificate file
                raise SlicerLeapError(f"flower-supernode stopped at start-up: {self.process.log()[-800:]}",
                                      "Check the address, port and certificate paths, and that the coordinator "
                                      "registered this site's key.")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()
