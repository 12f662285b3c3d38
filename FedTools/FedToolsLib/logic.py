"""FedTools' Qt-free logic: federated training on Flower as background jobs, and local training.

- Federated (`create_federated_job`): sites from this scene (lists of volume + segmentation cases) or
  data folders, run as a real Flower federation on this machine; or a coordinator that remote sites join
  (`create_coordinator_job`). Progress records carry each round's per-site loss, Dice and participation
  (`round_history` collects them for the panel's plot). The global model is registered in the catalog
  when the job succeeds and is usable at once in SKSSegmentation.
- Local (`create_local_training_job`): a 3D U-Net on this computer's cases only.
"""
from __future__ import annotations

import re
from pathlib import Path

import slicer

import SlicerLeapCommonLib
from slicerleap.errors import BadInputError
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.segmentations import label_specs, segment_names
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume

from .round_chart import update_round_chart

MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*@[0-9]+\.[0-9]+\.[0-9]+$")  # as in catalog.schema.json


class FedToolsLogic:
    """The FedTools module's Logic: local and federated training jobs on a scene. `ctx` defaults to the process-wide
    scene context. From Slicer's Python console:

        logic = slicer.util.getModuleLogic("FedTools")
        card = logic.process([getNode("case1")], [getNode("case1 segmentation")], model_id="liver-unet@1.0.0")["model"]
        job = logic.start_federated_training([[(v1, s1), (v2, s2)], [(v3, s3)]], rounds=5, model_id="fed-lesion@1.0.0")
        job = logic.start_coordinator(["siteA.pub", "siteB.pub"], host="0.0.0.0")  # remote sites join it:
        job = logic.join_federation([(v1, s1)], "fl.example.org:9092", "ca.crt", "keys/site")  # keys: create_site_keys
    """

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def create_local_training_job(self, images: list, segmentations: list, model_id: str = "my-unet@1.0.0",
                                  epochs: int = 10, iterations_per_epoch: int = 10, spacing_mm=(2.0, 2.0, 2.0),
                                  patch=(64, 64, 64), channels=(8, 16, 32, 64), device: str = "auto",
                                  keep_files: bool = False) -> SceneJob:
        """A training job (not started yet) on pairs images[n] / segmentations[n].

        Labels come from the first segmentation's segments (value = position + 1); in every case a segment
        gets the value of the segment with the same name, so the cases may list their segments in any order.
        `spacing_mm`: training voxel size (mm, i/j/k); `patch`: training patch (voxels at that spacing);
        `channels`: U-Net feature channels per level.
        """
        images, segmentations = list(images or []), list(segmentations or [])
        if not images:
            raise BadInputError("No training cases are selected.", "Add at least one (volume, segmentation) pair.")
        if len(images) != len(segmentations):
            raise BadInputError(f"Got {len(images)} volumes but {len(segmentations)} segmentations.",
                                "Give one segmentation per training volume.")
        for n, (image, segmentation) in enumerate(zip(images, segmentations), start=1):
            require_scalar_volume(image, f"volume of case {n}")
            if not isinstance(segmentation, slicer.vtkMRMLSegmentationNode):
                raise BadInputError(f"Case {n} has no segmentation node.", "Select the segmentation drawn on that volume.")
            if segmentation.GetSegmentation().GetNumberOfSegments() == 0:
                raise BadInputError(f"Segmentation '{segmentation.GetName()}' (case {n}) has no segments.",
                                    "Paint the structures to learn in Segment Editor first.")
        if len({image.GetID() for image in images}) != len(images):
            raise BadInputError("The same volume is used for more than one training case.", "Use each volume once.")
        labels = label_specs(segmentations[0])
        values = {spec["name"]: spec["value"] for spec in labels}
        for n, segmentation in enumerate(segmentations[1:], start=2):
            unknown = [name for name in segment_names(segmentation) if name not in values]
            if unknown:
                raise BadInputError(
                    f"Segmentation '{segmentation.GetName()}' (case {n}) has segments {unknown} that the first case's "
                    f"segmentation does not have ({', '.join(values)}).",
                    "Name the segments the same way in every case (or add them to the first case).")
        if not MODEL_ID_PATTERN.match(model_id or ""):
            raise BadInputError(f"'{model_id}' is not a valid model id.",
                                "Use lower-case name@version, e.g. 'liver-unet@1.0.0'.")
        spacing_mm, patch, channels = _triple(spacing_mm, float, "spacing"), _triple(patch, int, "patch"), [int(c) for c in channels]
        if min(spacing_mm) <= 0 or min(patch) < 8 or len(channels) < 2 or min(channels) < 1:
            raise BadInputError(f"Training settings out of range: spacing {spacing_mm} mm, patch {patch}, channels {channels}.",
                                "Use positive spacings, patches of at least 8 voxels and two or more channel counts.")
        if int(epochs) < 1 or int(iterations_per_epoch) < 1:
            raise BadInputError("Epochs and iterations per epoch must be at least 1.", "Use e.g. 10 and 10.")
        params = {"epochs": int(epochs), "iterations_per_epoch": int(iterations_per_epoch), "labels": labels,
                  "model_id": model_id, "spacing_mm": spacing_mm, "patch": patch, "channels": channels,
                  "title": f"{model_id.split('@')[0]} (trained in SlicerLeap FedTools, local site)"}
        inputs = {"images": images,
                  # (segmentation, reference volume, name -> value): a labelmap on the volume's grid
                  "labels": [(segmentation, image, values) for image, segmentation in zip(images, segmentations)]}
        return SceneJob(self.ctx, "train-segmentation", inputs, params, device=device, keep_files=keep_files)

    def create_federated_job(self, sites: list, segment: str | None = None, rounds: int = 3, strategy: str = "fedavg",
                             local_iterations: int = 20, model_id: str = "fed-unet@1.0.0", settings: dict | None = None,
                             device: str = "auto", keep_files: bool = False) -> SceneJob:
        """A federated training job (not started) over `sites`, every site on this machine as its own Flower
        SuperNode process. Each site is a list of (volume node, segmentation node) cases from this scene, or
        a data folder path (images/ + labels/). `segment`: the segment to learn (default: the first case's
        first segment); `settings`: further federation settings (slicerleap.federated.run_config.DEFAULTS)."""
        if len(sites) < 1:
            raise BadInputError("No sites are defined.", "Add at least two sites (each a list of cases, or a data folder).")
        run_config = _federation_config(rounds, strategy, local_iterations, model_id, settings)
        folders = [str(site) for site in sites if isinstance(site, (str, Path))]
        scene_sites = [list(site) for site in sites if not isinstance(site, (str, Path))]
        if folders and scene_sites:
            raise BadInputError("Sites mix scene cases and data folders.", "Use scene cases for every site, or folders for every site.")
        images, labels = self._site_cases(scene_sites, segment)
        params = {"mode": "simulate", "run_config": run_config}
        if folders:
            params["site_folders"] = folders
        else:
            params["site_sizes"] = [len(cases) for cases in scene_sites]
        inputs = {"images": images, "labels": labels} if images else {}
        return SceneJob(self.ctx, "federated-train", inputs, params, device=device, keep_files=keep_files)

    @staticmethod
    def _site_cases(scene_sites: list, segment: str | None) -> tuple[list, list]:
        """Checked (volumes, labelmap inputs) of every site's (volume, segmentation) cases, in order."""
        images, labels = [], []
        for n, cases in enumerate(scene_sites, start=1):
            if not cases:
                raise BadInputError(f"Site {n} has no cases.", "Give each site at least one volume with its segmentation.")
            for volume, segmentation in cases:
                require_scalar_volume(volume, f"volume of site {n}")
                if not isinstance(segmentation, slicer.vtkMRMLSegmentationNode) or not segment_names(segmentation):
                    raise BadInputError(f"A case of site {n} ('{volume.GetName()}') has no segmentation with segments.",
                                        "Give each volume the segmentation drawn on it.")
                name = segment or segment_names(scene_sites[0][0][1])[0]
                if name not in segment_names(segmentation):
                    raise BadInputError(f"Segmentation '{segmentation.GetName()}' (site {n}) has no segment '{name}'.",
                                        "Name the structure the same way at every site.")
                images.append(volume)
                labels.append((segmentation, volume, {name: 1}))
        return images, labels

    def create_coordinator_job(self, site_keys: list, host: str = "127.0.0.1", port: int = 9092, rounds: int = 3,
                               strategy: str = "fedavg", local_iterations: int = 20, model_id: str = "fed-unet@1.0.0",
                               settings: dict | None = None, keep_files: bool = False) -> SceneJob:
        """A job that coordinates remote sites (their public key files in `site_keys`); its first progress
        record gives the address and the CA certificate sites join with (`slicerleap fed site`)."""
        missing = [k for k in site_keys if not Path(k).is_file()]
        if not site_keys or missing:
            raise BadInputError(f"Site public keys missing: {missing or 'none given'}.",
                                "Each site makes its key pair with `slicerleap fed keys` and sends you the .pub file.")
        params = {"mode": "coordinate", "site_keys": [str(Path(k).resolve()) for k in site_keys], "host": host, "port": int(port),
                  "run_config": _federation_config(rounds, strategy, local_iterations, model_id, settings)}
        return SceneJob(self.ctx, "federated-train", {}, params, keep_files=keep_files)

    def create_site_job(self, site, server: str, ca_cert: str | Path, private_key: str | Path, segment: str | None = None,
                        site_index: int = 0, device: str = "auto", keep_files: bool = False) -> SceneJob:
        """A job (not started) that joins the coordinator at `server` ("host:port") as one site: `site` is a
        list of (volume node, segmentation node) cases of this scene, or a data folder (images/ + labels/).
        `ca_cert`: the coordinator's ca.crt; `private_key`: this site's key (create_site_keys). Only model
        weights and scalar metrics leave the site. The job ends when the final global model arrives, and
        registers it in this computer's catalog; cancel leaves the federation."""
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+:\d{1,5}", str(server or "")):
            raise BadInputError(f"'{server}' is not a coordinator address.", "Give host:port as the coordinator shows it, e.g. 10.0.0.5:9092.")
        for path, what, fix in ((ca_cert, "coordinator's CA certificate", "Ask the coordinator for its ca.crt."),
                                (private_key, "site private key", "Make the site's keys with create_site_keys (or `slicerleap fed keys`).")):
            if not path or not Path(path).is_file():
                raise BadInputError(f"The {what} '{path}' does not exist.", fix)
        params = {"mode": "site", "server": server, "ca_cert": str(Path(ca_cert).resolve()),
                  "private_key": str(Path(private_key).resolve()), "site_index": int(site_index)}
        if isinstance(site, (str, Path)):
            if not Path(site).is_dir():
                raise BadInputError(f"The site data folder '{site}' does not exist.", "Give the folder holding images/ and labels/.")
            params["site_folders"] = [str(Path(site).resolve())]
            return SceneJob(self.ctx, "federated-train", {}, params, device=device, keep_files=keep_files)
        images, labels = self._site_cases([list(site)], segment)
        params["site_sizes"] = [len(images)]
        return SceneJob(self.ctx, "federated-train", {"images": images, "labels": labels}, params, device=device, keep_files=keep_files)

    @staticmethod
    def create_site_keys(folder: str | Path, name: str = "site") -> tuple[Path, Path]:
        """This site's key pair (private key stays here; send the .pub file to the coordinator)."""
        from slicerleap.federated.credentials import make_node_keys

        return make_node_keys(folder, name)

    def start_local_training(self, images: list, segmentations: list, **options) -> SceneJob:
        """Start training in a worker process and return at once; poll() the job, then finish().
        `options` are create_local_training_job's keyword arguments."""
        return self.create_local_training_job(images, segmentations, **options).start()

    def start_federated_training(self, sites: list, **options) -> SceneJob:
        """Start `create_federated_job` (every site on this computer) and return at once; its progress records
        carry each round's per-site results (`round_history`)."""
        return self.create_federated_job(sites, **options).start()

    def start_coordinator(self, site_keys: list, **options) -> SceneJob:
        """Start `create_coordinator_job`; its first progress record gives the address and CA certificate file."""
        return self.create_coordinator_job(site_keys, **options).start()

    def join_federation(self, site, server: str, ca_cert: str | Path, private_key: str | Path, **options) -> SceneJob:
        """Start `create_site_job`: ends when the final global model arrives (registered here)."""
        return self.create_site_job(site, server, ca_cert, private_key, **options).start()

    def process(self, images: list, segmentations: list, on_progress=None, timeout: float | None = None, **options) -> dict:
        """Train on this computer and wait. Returns {"model": card} with the registered model's card (id, labels,
        evaluation, "_path" of the weights); `options` are create_local_training_job's. Progress goes to the
        application log unless `on_progress` takes it."""
        job = self.create_local_training_job(images, segmentations, **options)
        return job.run(on_progress=on_progress or SlicerLeapCommonLib.logProgress, timeout=timeout)

    @staticmethod
    def sites_from_numbers(cases: list, site_numbers: list) -> list[list]:
        """The panel's simulated sites: one list of cases per distinct site number, in number order (a case past
        the end of `site_numbers` belongs to site 0)."""
        sites = {}
        for n, case in enumerate(cases):
            sites.setdefault(site_numbers[n] if n < len(site_numbers) else 0, []).append(case)
        return [sites[k] for k in sorted(sites)]

    @staticmethod
    def round_history(records: list[dict], site_index: int = 0) -> list[dict]:
        """Round log entries from a federated job's progress records (module function round_history)."""
        return round_history(records, site_index)

    def update_round_chart(self, history: list[dict], table=None, chart=None) -> tuple:
        """The rounds' table and plot chart nodes in this Logic's scene, new or updated (round_chart.py)."""
        return update_round_chart(self.ctx.scene, history, table, chart)


def _federation_config(rounds: int, strategy: str, local_iterations: int, model_id: str, settings: dict | None) -> dict:
    """Flower run config of a federated job (slicerleap.federated.run_config keys), checked."""
    if not MODEL_ID_PATTERN.match(model_id or ""):
        raise BadInputError(f"'{model_id}' is not a valid model id.", "Use lower-case name@version, e.g. 'fed-liver@1.0.0'.")
    if strategy not in ("fedavg", "fedprox"):
        raise BadInputError(f"Unknown strategy '{strategy}'.", "Use 'fedavg' or 'fedprox'.")
    from slicerleap.federated.run_config import DEFAULTS, PRIVACY, checked_settings

    unknown = sorted(set(settings or {}) - set(DEFAULTS))
    if unknown:
        raise BadInputError(f"Unknown federation settings: {', '.join(unknown)}.", f"Known settings: {', '.join(DEFAULTS)}.")
    if (settings or {}).get("dp", "off") not in PRIVACY:
        raise BadInputError(f"Unknown differential privacy mode '{settings['dp']}'.", f"Use one of: {', '.join(PRIVACY)}.")
    config = {**(settings or {}), "num-server-rounds": int(rounds), "strategy": strategy,
              "local-iterations": int(local_iterations), "model-id": model_id}
    checked_settings(config)
    return config


def round_history(records: list[dict], site_index: int = 0) -> list[dict]:
    """The round log entries carried by a federated job's progress records (for the panel's plot/table). A site
    job's records ("site_log": this site's own replies, in order) become entries of this site alone: its n-th
    evaluation reply is round n - 1 (round 0 scores the initial weights), its n-th training reply round n."""
    history = []
    for record in records:
        if not isinstance(record, dict):
            continue
        if "round_log" in record:
            history.append(record["round_log"])
        elif "site_log" in record:
            reply = record["site_log"]
            evaluate = reply["phase"] == "evaluate"
            value = {"dice": reply["dice"]} if evaluate and "dice" in reply else {"loss": reply["loss"]} if "loss" in reply else {}
            history.append({"round": reply["count"] - 1 if evaluate else reply["count"], "phase": reply["phase"], "failures": [],
                            "sites": [{**value, "site-index": site_index}], "mean_dice": value.get("dice")})
    return history


def _triple(value, cast, what: str) -> list:
    values = [cast(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    if len(values) != 3:
        raise BadInputError(f"The {what} {list(value)} does not have three values (i, j, k).", f"Give one {what} or three.")
    return values
