"""The model catalog: bundled cards (Resources/models/catalog.json) plus user-registered ones
($SLICERLEAP_HOME/models/catalog.json). Cards are validated against Resources/models/catalog.schema.json."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema

from ..errors import ModelError
from ..json_files import write_json_atomically
from ..resources import resources_dir, user_home
from .weights import sha256_of


def _schema() -> dict:
    return json.loads((resources_dir() / "models" / "catalog.schema.json").read_text(encoding="utf-8"))


def validate_card(card: dict) -> None:
    try:
        jsonschema.validate(card, _schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ModelError(f"Model card is invalid at '{where}': {exc.message}.",
                         "Correct the card JSON (see Resources/models/catalog.schema.json).") from None


def _version_key(model_id: str):
    return tuple(int(x) for x in model_id.split("@")[1].split("."))


class ModelCatalog:
    def __init__(self, folders: list[Path] | None = None):
        self.folders = folders or [resources_dir() / "models", user_home() / "models"]

    @property
    def user_folder(self) -> Path:
        return self.folders[-1]

    def cards(self) -> list[dict]:
        """All valid cards; each gets "_path" (its weights file). Later folders override earlier ones."""
        found: dict[str, dict] = {}
        for folder in self.folders:
            catalog_file = folder / "catalog.json"
            if not catalog_file.exists():
                continue
            for card in json.loads(catalog_file.read_text(encoding="utf-8")).get("models", []):
                validate_card(card)
                found[card["id"]] = {**card, "_path": str(folder / card["file"])}
        return list(found.values())

    def get(self, model_id: str) -> dict:
        """Card for 'name@version', or the newest version for a bare 'name'."""
        cards = self.cards()
        exact = [c for c in cards if c["id"] == model_id]
        if not exact:
            exact = sorted((c for c in cards if c["id"].split("@")[0] == model_id), key=lambda c: _version_key(c["id"]))[-1:]
        if not exact:
            known = ", ".join(sorted(c["id"] for c in cards)) or "none"
            raise ModelError(f"Unknown model '{model_id}'. Known models: {known}.",
                             "Pick one of these, or import yours with `slicerleap models import WEIGHTS CARD`.")
        return exact[0]

    def default_for(self, task: str, module: str | None = None) -> dict:
        cards = [c for c in self.cards() if c["task"] == task and (module is None or c.get("module") == module)]
        if not cards:
            raise ModelError(f"No {task} model is installed.", "Import one with `slicerleap models import`.")
        return sorted(cards, key=lambda c: (c.get("default", False), _version_key(c["id"])))[-1]

    def register(self, weights: str | Path, card: dict) -> dict:
        """Copy weights into the user folder and add the card. A card without sha256 gets the file's;
        a card with one must match the file."""
        weights = Path(weights)
        if not weights.is_file():
            raise ModelError(f"Weights file '{weights}' does not exist.", "Check the path.")
        if weights.suffix != ".safetensors":
            raise ModelError(f"'{weights.name}' is not a .safetensors file; pickled checkpoints are not loaded for safety.",
                             "Convert it with safetensors.torch.save_file(model.state_dict(), 'model.safetensors').")
        digest = sha256_of(weights)
        if card.get("sha256") and card["sha256"] != digest:
            raise ModelError(f"The weights' sha256 {digest[:12]}… does not match the card's {card['sha256'][:12]}….",
                             "Use the weights file the card was written for, or correct the card.")
        card = {k: v for k, v in card.items() if not k.startswith("_")}
        card["sha256"] = digest
        card["file"] = card["id"].replace("@", "-") + ".safetensors"
        validate_card(card)
        folder = self.user_folder
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, folder / card["file"])
        catalog_file = folder / "catalog.json"
        entries = json.loads(catalog_file.read_text(encoding="utf-8"))["models"] if catalog_file.exists() else []
        entries = [c for c in entries if c["id"] != card["id"]] + [card]
        # sites on one machine may register at once; a crash never leaves a half-written catalog
        write_json_atomically(catalog_file, {"schema_version": 1, "models": entries}, indent=2)
        return {**card, "_path": str(folder / card["file"])}


def get_catalog() -> ModelCatalog:
    return ModelCatalog()


def add_bundled_card(card: dict) -> None:
    """Add or replace `card` in the bundled catalog (Resources/models/catalog.json); for the scripts that
    train the bundled models. Its weights file must already be in that folder."""
    validate_card(card)
    catalog_file = resources_dir() / "models" / "catalog.json"
    catalog = json.loads(catalog_file.read_text(encoding="utf-8"))
    others = [c for c in catalog["models"] if c["id"] != card["id"]]
    if card.get("default"):  # one default per task, or default_for would pick between equals by file order
        others = [{**c, "default": False} if c["task"] == card["task"] and c.get("default") else c for c in others]
    catalog["models"] = others + [card]
    write_json_atomically(catalog_file, catalog, indent=2)
