"""The model catalog and caches cannot be fooled: an edited OpenVINO cache is rebuilt, a user card cannot shadow a
bundled model or move a default, concurrent imports keep every entry, a model of another task is refused, and a
broken card or catalog is named in a clear error (issue 30, "Medium: models")."""
import json
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest

from slicerleap.errors import BadInputError, ModelError
from slicerleap.models import ModelCatalog, get_catalog
from slicerleap.models.catalog import CatalogWarning
from slicerleap.resources import resources_dir

BUNDLED_SEGMENTATION = "brain-lesion-sks@1.0.0"


def card_for(model_id, task="segmentation"):
    return {"id": model_id, "task": task, "modality": "CT",
            "architecture": {"name": "monai.UNet", "args": {}},
            "input": {"spacing_mm": [2, 2, 2], "normalisation": {"kind": "window", "center": 40, "width": 400}},
            "labels": [{"value": 1, "name": "Liver", "color": "#dd8844"}],
            "licence": "test", "training_data": "random numbers, for tests only", "file": "x.safetensors"}


def tiny_weights(path, value=0.0):
    from safetensors.numpy import save_file

    save_file({"w": np.full(4, value, np.float32)}, str(path))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cli(*args):
    from slicerleap.cli import main

    return main([str(a) for a in args])


# 1. the OpenVINO cache

def test_an_edited_openvino_cache_is_rebuilt_never_loaded(home):
    import torch

    from slicerleap.models.openvino_backend import OpenVINONet

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(2, 3, 16, 16)
    messages = []
    with torch.inference_mode():
        expected = net(x)
        torch.testing.assert_close(OpenVINONet(net, key="cd" * 32)(x), expected, atol=1e-4, rtol=1e-4)
    (xml,) = (home / "openvino").rglob("*.xml")
    record = xml.with_suffix(".sha256.json")
    assert set(json.loads(record.read_text())) == {"xml", "bin"}
    weights = xml.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    data[len(data) // 8 * 4 + 3] ^= 0x40  # the exponent byte of a float32 weight: a large change if loaded
    weights.write_bytes(bytes(data))
    with torch.inference_mode():
        out = OpenVINONet(net, key="cd" * 32, report=lambda p, stage, message: messages.append(message))(x)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    assert any("failed verification" in m for m in messages), messages
    assert weights.read_bytes() != bytes(data), "the cache was rebuilt"
    record.unlink()  # a cache written before records existed is not trusted either
    messages.clear()
    with torch.inference_mode():
        torch.testing.assert_close(OpenVINONet(net, key="cd" * 32, report=lambda *a: messages.append(a[2]))(x), expected,
                                   atol=1e-4, rtol=1e-4)
    assert any("failed verification" in m for m in messages) and record.exists()


# 2. no shadowing, defaults only by the user's choice

def test_a_bundled_id_cannot_be_imported_and_a_shadowing_entry_is_ignored(home, tmp_path, capsys):
    bundled = ModelCatalog([resources_dir() / "models"]).get(BUNDLED_SEGMENTATION)
    weights = tiny_weights(tmp_path / "other.safetensors")
    card_file = tmp_path / "card.json"
    card_file.write_text(json.dumps({**card_for(BUNDLED_SEGMENTATION), "default": True}), encoding="utf-8")
    assert cli("models", "import", weights, card_file) == 2
    err = capsys.readouterr().err
    assert f"'{BUNDLED_SEGMENTATION}' is already in the catalog" in err and "new version, e.g. name@1.0.1" in err
    assert not (home / "models" / "catalog.json").exists()

    # a catalog edited by hand (or written by an older version) still cannot replace the bundled network
    (home / "models").mkdir(parents=True, exist_ok=True)
    tiny_weights(home / "models" / "x.safetensors")
    from slicerleap.models.weights import sha256_of

    shadow = {**card_for(BUNDLED_SEGMENTATION), "default": True, "sha256": sha256_of(home / "models" / "x.safetensors")}
    (home / "models" / "catalog.json").write_text(json.dumps({"models": [shadow]}), encoding="utf-8")
    with pytest.warns(CatalogWarning, match=f"Ignored the entry '{BUNDLED_SEGMENTATION}'"):
        card = get_catalog().get(BUNDLED_SEGMENTATION)
    assert card["sha256"] == bundled["sha256"] and card["_path"] == bundled["_path"]
    with pytest.warns(CatalogWarning):
        assert get_catalog().default_for("segmentation")["sha256"] == bundled["sha256"]


def test_only_the_users_explicit_choice_changes_the_default(home, tmp_path, capsys):
    weights = tiny_weights(tmp_path / "mine.safetensors")
    card_file = tmp_path / "card.json"
    card_file.write_text(json.dumps({**card_for("my-unet@9.0.0"), "default": True}), encoding="utf-8")
    assert cli("models", "import", weights, card_file) == 0
    assert cli("models", "import", weights, card_file) == 0  # the same model again: nothing changes
    assert get_catalog().default_for("segmentation")["id"] == BUNDLED_SEGMENTATION
    stored = json.loads((home / "models" / "catalog.json").read_text())["models"]
    assert [c["id"] for c in stored] == ["my-unet@9.0.0"] and "default" not in stored[0]

    assert cli("models", "default", "my-unet") == 0
    assert "my-unet@9.0.0" in capsys.readouterr().out
    assert get_catalog().default_for("segmentation")["id"] == "my-unet@9.0.0"
    assert get_catalog().default_for("registration")["id"] == "brain-tm-dca@1.0.0"  # other tasks keep theirs

    # another network under a registered id is refused; the stored model stays
    assert cli("models", "import", tiny_weights(tmp_path / "other.safetensors", 1.0), card_file) == 2
    assert "already in the catalog" in capsys.readouterr().err
    assert get_catalog().get("my-unet@9.0.0")["sha256"] == stored[0]["sha256"]

    (home / "models" / "my-unet-9.0.0.safetensors").unlink()
    stored_catalog = home / "models" / "catalog.json"
    stored_catalog.write_text(json.dumps({"models": []}), encoding="utf-8")
    with pytest.raises(ModelError, match="default segmentation model 'my-unet@9.0.0' is not installed.*Fix:"):
        get_catalog().default_for("segmentation")


# 3. concurrent registrations

def _register_one(home, weights, model_id, barrier):
    import os

    os.environ["SLICERLEAP_HOME"] = home
    barrier.wait()
    get_catalog().register(weights, card_for(model_id))


def test_concurrent_registrations_keep_every_entry(home, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(6)
    processes = [ctx.Process(target=_register_one, args=(str(home), str(tiny_weights(tmp_path / f"w{n}.safetensors", n)),
                                                         f"site-{n}@1.0.0", barrier)) for n in range(6)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    assert [p.exitcode for p in processes] == [0] * 6
    stored = json.loads((home / "models" / "catalog.json").read_text())["models"]
    assert sorted(c["id"] for c in stored) == [f"site-{n}@1.0.0" for n in range(6)]
    assert all((home / "models" / c["file"]).exists() for c in stored)


# 4. a model of another task

def test_a_model_for_another_task_is_refused_before_any_work(home, tmp_path):
    from phantoms import sphere_phantom
    from slicerleap.io import write_volume

    image = write_volume(sphere_phantom(12), tmp_path / "small.nii.gz")
    out = subprocess.run([sys.executable, "-m", "slicerleap.cli", "segment", "--input", str(image), "--output",
                          str(tmp_path / "out.nii.gz"), "--model", "brain-tm-dca@1.0.0", "--device", "cpu"],
                         capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Model 'brain-tm-dca@1.0.0' is a registration model; `segment` needs a segmentation model." in out.stderr
    assert "Fix: Choose one of:" in out.stderr and BUNDLED_SEGMENTATION in out.stderr and "`slicerleap register`" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "out.nii.gz").exists()
    with pytest.raises(BadInputError, match="is a segmentation model; `register` needs a registration model.*brain-tm-dca"):
        get_catalog().resolve(BUNDLED_SEGMENTATION, "registration", "register")
    assert get_catalog().resolve(None, "registration")["id"] == "brain-tm-dca@1.0.0"


# 5. broken cards and catalogs

def test_broken_cards_and_catalogs_give_a_clear_error_naming_the_file(home, tmp_path, capsys):
    weights = tiny_weights(tmp_path / "w.safetensors")
    card_file = tmp_path / "card.json"
    card_file.write_text('{"id": "broken@1.0.0", "task": ', encoding="utf-8")
    assert cli("models", "import", weights, card_file) == 2
    err = capsys.readouterr().err
    assert f"'{card_file}' is not valid JSON" in err and "Fix:" in err
    card_file.write_text(json.dumps({k: v for k, v in card_for("x@1.0.0").items() if k != "id"}), encoding="utf-8")
    assert cli("models", "import", weights, card_file) == 2
    assert "'id' is a required property" in capsys.readouterr().err

    catalog_file = home / "models" / "catalog.json"
    catalog_file.parent.mkdir(parents=True)
    catalog_file.write_text("{not json", encoding="utf-8")
    assert cli("models", "list") == 2
    err = capsys.readouterr().err
    assert f"The model catalog '{catalog_file}' is not valid JSON" in err and "Fix:" in err
    card_file.write_text(json.dumps(card_for("fine@1.0.0")), encoding="utf-8")
    assert cli("models", "import", weights, card_file) == 2  # never written over the user's broken catalog
    assert catalog_file.read_text() == "{not json"

    catalog_file.write_text(json.dumps({"models": [{k: v for k, v in card_for("x@1.0.0").items() if k != "id"}]}))
    with pytest.raises(ModelError, match=f"card in '{catalog_file}' is invalid.*'id' is a required property.*Fix:"):
        get_catalog().cards()
    catalog_file.write_text(json.dumps(["not", "a", "catalog"]))
    with pytest.raises(ModelError, match="no list of cards.*Fix:"):
        get_catalog().cards()
