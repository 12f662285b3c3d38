"""Model catalog: schema validation, sha256-verified safetensors, tampered files refused, offline import."""
import json

import pytest
import torch
from safetensors.torch import save_file

from slicerleap.cli import main as cli_main
from slicerleap.errors import ModelError
from slicerleap.models import ModelCatalog, get_catalog
from slicerleap.models.networks import build_network, load_model
from slicerleap.models.weights import sha256_of
from slicerleap.resources import resources_dir

TINY = {"name": "monai.UNet", "args": {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [2, 4],
                                       "strides": [2], "num_res_units": 0}}


def tiny_card(model_id="tiny-unet@1.0.0"):
    return {"id": model_id, "task": "segmentation", "module": "SKSSegmentation", "modality": "CT", "architecture": TINY,
            "input": {"spacing_mm": [2, 2, 2], "patch": [16, 16, 16], "normalisation": {"kind": "window", "center": 40, "width": 400}},
            "labels": [{"value": 1, "name": "Liver", "color": "#dd8844",
                        "terminology": {"category": "SCT^123037004^Anatomical Structure", "type": "SCT^10200004^Liver"}}],
            "licence": "test", "training_data": "random initialisation, for tests only", "file": "x.safetensors"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_file(build_network(TINY).state_dict(), str(path))
    return path


def test_bundled_catalog_is_valid_and_its_weights_verify():
    cards = ModelCatalog([resources_dir() / "models"]).cards()
    assert cards, "the extension ships at least one model"
    for card in cards:
        net = load_model(card, "cpu")  # sha256 checked before loading
        assert sum(p.numel() for p in net.parameters()) > 0
        assert len(card["training_data"]) > 40, "cards say plainly what the model was trained on"


def test_one_default_per_task_and_adding_a_default_card_keeps_it_so(tmp_path, monkeypatch, weights):
    from collections import Counter
    import shutil

    from slicerleap.models.catalog import add_bundled_card

    bundled = ModelCatalog([resources_dir() / "models"]).cards()
    assert Counter(c["task"] for c in bundled if c.get("default")) == Counter({"segmentation": 1, "registration": 1})
    assert ModelCatalog([resources_dir() / "models"]).default_for("segmentation")["id"] == "brain-lesion-sks@1.0.0"
    copy = tmp_path / "Resources"
    shutil.copytree(resources_dir() / "models", copy / "models", ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setenv("SLICERLEAP_RESOURCES", str(copy))
    shutil.copy2(weights, copy / "models" / "x.safetensors")
    add_bundled_card({**tiny_card(), "default": True, "sha256": sha256_of(weights)})
    after = {c["id"]: c.get("default", False) for c in json.loads((copy / "models" / "catalog.json").read_text())["models"]}
    assert after["tiny-unet@1.0.0"] and not after["brain-lesion-sks@1.0.0"] and after["brain-tm-dca@1.0.0"]
    assert ModelCatalog([copy / "models"]).default_for("segmentation")["id"] == "tiny-unet@1.0.0"


def test_register_then_load(home, weights):
    card = get_catalog().register(weights, tiny_card())
    assert (home / "models" / "tiny-unet-1.0.0.safetensors").exists()
    assert get_catalog().get("tiny-unet")["id"] == "tiny-unet@1.0.0"  # bare name -> newest version
    from safetensors.torch import load_file

    state = load_model(get_catalog().get("tiny-unet@1.0.0"), "cpu").state_dict()
    original = load_file(str(weights))
    assert set(state) == set(original) and all(torch.equal(state[k], original[k]) for k in original)
    assert card["sha256"] != "0" * 64


def test_a_trained_model_card_takes_the_users_choices_and_registers_from_the_job(home, weights, tmp_path):
    """One card builder for every trainer (slicerleap/models/cards.py); the user's id, title, modality, licence and
    training-data note override the trainer's defaults; a job's model output registers through one function."""
    import shutil
    import types

    from slicerleap.models.cards import model_output, register_job_model, trained_model_card

    known = dict(task="segmentation", module="SKSSegmentation", architecture=TINY, labels=tiny_card()["labels"],
                 input_spec=tiny_card()["input"], training_data="2 user cases", evaluation={"history": []})
    card = trained_model_card({}, default_id="my-unet@1.0.0", default_title="U-Net", **known)
    assert (card["id"], card["licence"], card["modality"], card["file"]) == ("my-unet@1.0.0", "user-owned", "any", "model.safetensors")
    assert "training" not in card and card["evaluation"] == {"history": []}
    users = {"model_id": "liver@2.0.0", "title": "Liver", "modality": "CT", "licence": "CC-BY-4.0", "training_data": "my twelve liver scans"}
    card = trained_model_card(users, default_id="my-unet@1.0.0", default_title="U-Net", **known)
    assert {k: card[k] for k in ("id", "title", "modality", "licence", "training_data")} == {
        "id": "liver@2.0.0", "title": "Liver", "modality": "CT", "licence": "CC-BY-4.0", "training_data": "my twelve liver scans"}
    outputs = tmp_path / "job" / "outputs"
    outputs.mkdir(parents=True)
    shutil.copy(weights, outputs / "model.safetensors")
    job = types.SimpleNamespace(output_path=lambda relative: tmp_path / "job" / relative)
    ctx = types.SimpleNamespace(output_path=lambda name: outputs / name)
    registered = register_job_model(job, model_output(ctx, card))
    assert registered["id"] == "liver@2.0.0" and get_catalog().get("liver@2.0.0")["sha256"] == registered["sha256"]


def test_tampered_weights_are_refused_with_a_clear_error(home, weights):
    get_catalog().register(weights, tiny_card())
    stored = home / "models" / "tiny-unet-1.0.0.safetensors"
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit pattern inside the tensor data
    stored.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="failed verification.*not loaded.*Fix:"):
        load_model(get_catalog().get("tiny-unet@1.0.0"), "cpu")


def test_missing_weights_file(home, weights):
    get_catalog().register(weights, tiny_card())
    (home / "models" / "tiny-unet-1.0.0.safetensors").unlink()
    with pytest.raises(ModelError, match="missing.*Fix:"):
        load_model(get_catalog().get("tiny-unet"), "cpu")


def test_card_sha_mismatch_and_invalid_cards_are_refused(home, weights, tmp_path):
    card = tiny_card()
    card["sha256"] = "a" * 64
    with pytest.raises(ModelError, match="does not match the card"):
        get_catalog().register(weights, card)
    bad = tiny_card()
    bad["id"] = "no-version"
    with pytest.raises(ModelError, match="invalid at 'id'"):
        get_catalog().register(weights, bad)
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="pickled checkpoints are not loaded"):
        get_catalog().register(pickle, tiny_card())
    with pytest.raises(ModelError, match="Unknown model 'nope'"):
        get_catalog().get("nope")


def test_cli_models_import_registers_offline(home, weights, tmp_path, capsys):
    card_file = tmp_path / "card.json"
    card = tiny_card("cli-unet@2.1.0")
    card_file.write_text(json.dumps({**card, "sha256": "0" * 64}), encoding="utf-8")
    # a card whose sha256 does not match the file is refused
    assert cli_main(["models", "import", str(weights), str(card_file)]) == 2
    assert "does not match" in capsys.readouterr().err
    card_file.write_text(json.dumps(card), encoding="utf-8")  # no sha256: computed from the file at import
    assert cli_main(["models", "import", str(weights), str(card_file)]) == 0
    assert "registered cli-unet@2.1.0" in capsys.readouterr().out
    assert get_catalog().get("cli-unet")["sha256"]


def test_segment_job_with_tampered_model_reports_model_error(home, weights, tmp_path):
    from phantoms import sphere_phantom
    from slicerleap.jobs import JobFailed
    from slicerleap.jobs.files import run_task_on_files
    from slicerleap.io import write_volume

    get_catalog().register(weights, tiny_card())
    stored = home / "models" / "tiny-unet-1.0.0.safetensors"
    stored.write_bytes(stored.read_bytes()[:-8] + b"\x00" * 8)
    image = write_volume(sphere_phantom(20), tmp_path / "ct.nrrd")
    with pytest.raises(JobFailed, match="failed verification") as info:
        run_task_on_files("segment", {"image": image}, model="tiny-unet@1.0.0")
    assert info.value.status == "model-error" and info.value.exit_code == 4


def test_terminology_loads_in_slicer_and_covers_every_bundled_label():
    import slicer

    path = resources_dir() / "Terminology" / "SlicerLeap-terminology.json"
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    assert logic.LoadTerminologyFromFile(str(path)) == "SlicerLeap - label-efficient models"
    codes = set()
    for category in json.loads(path.read_text(encoding="utf-8"))["SegmentationCodes"]["Category"]:
        for entry in category["Type"]:
            codes.add((category["CodeValue"], entry["CodeValue"]))
    for card in ModelCatalog([resources_dir() / "models"]).cards():
        for label in card["labels"]:
            t = label["terminology"]
            pair = (t["category"].split("^")[1], t["type"].split("^")[1])
            assert pair in codes, f"{card['id']} label {label['name']} uses codes {pair} missing from the terminology file"
