"""The model catalog: bundled cards (Resources/models/catalog.json) plus user-registered ones
($SLICERLEAP_HOME/models/catalog.json). Cards are validated against Resources/models/catalog.schema.json.

Bundled models cannot be shadowed: an id is registered once (a new model needs a new version), a user entry
repeating an earlier folder's id is ignored, and only the bundled catalog's "default" flags count. The user
changes a default explicitly (`slicerleap models default ID`, kept in $SLICERLEAP_HOME/models/defaults.json)."""
from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import jsonschema
from filelock import FileLock

from ..errors import BadInputError, ModelError
from ..json_files import write_json_atomically
from ..resources import resources_dir, user_home
from .weights import sha256_of

NEW_VERSION_FIX = "Give it a new version, e.g. name@1.0.1"
RUN_WITH = {"segmentation": "`slicerleap segment`", "text-segmentation": "`slicerleap segment-text` and a text prompt",
            "registration": "`slicerleap register`", "reconstruction": "`slicerleap reconstruct --method varnet`"}  # where a refused model belongs


class CatalogWarning(UserWarning):
    """A catalog entry was ignored (shown, never silent)."""


def _schema() -> dict:
    return json.loads((resources_dir() / "models" / "catalog.schema.json").read_text(encoding="utf-8"))


def validate_card(card: dict, source: str | Path | None = None) -> None:
    where_file = f" in '{source}'" if source else ""
    try:
        jsonschema.validate(card, _schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ModelError(f"Model card{where_file} is invalid at '{where}': {exc.message}.",
                         "Correct the card JSON (see Resources/models/catalog.schema.json).") from None


def read_json_file(path: str | Path, what: str) -> object:
    """A JSON file's content; a missing or broken file is a ModelError naming it, not a traceback."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"The {what} '{path}' does not exist.", "Check the path.") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ModelError(f"The {what} '{path}' is not valid JSON ({exc}).",
                         "Repair the file (or restore it from a backup); it must hold a JSON object.") from None


def read_card_file(path: str | Path) -> dict:
    card = read_json_file(path, "model card")
    if not isinstance(card, dict):
        raise ModelError(f"The model card '{path}' is not a JSON object.", "A card is one object with id, task, file, …")
    return card


def _catalog_entries(catalog_file: Path) -> list[dict]:
    content = read_json_file(catalog_file, "model catalog")
    models = content.get("models") if isinstance(content, dict) else None
    if not isinstance(models, list) or not all(isinstance(c, dict) for c in models):
        raise ModelError(f"The model catalog '{catalog_file}' has no list of cards under \"models\".",
                         "Repair the file (or restore it from a backup).")
    for card in models:
        validate_card(card, catalog_file)
    return models


def _version_key(model_id: str):
    return tuple(int(x) for x in model_id.split("@")[1].split("."))


def _is_bundled(folder: Path) -> bool:
    return Path(folder).resolve() == (resources_dir() / "models").resolve()


def _copy_atomically(source: Path, destination: Path) -> None:
    tmp = destination.with_name(f"{destination.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(destination)


class ModelCatalog:
    def __init__(self, folders: list[Path] | None = None):
        self.folders = [Path(f) for f in folders] if folders else [resources_dir() / "models", user_home() / "models"]

    @property
    def user_folder(self) -> Path:
        return self.folders[-1]

    def _lock(self) -> FileLock:
        """Held around every read-modify-write of the user's catalog and defaults: processes register at once."""
        self.user_folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.user_folder / "catalog.json.lock"), timeout=120)

    def cards(self) -> list[dict]:
        """All valid cards; each gets "_path" (its weights file). An id already listed by an earlier folder
        (bundled first) is ignored with a CatalogWarning; "default" flags count only in the bundled catalog."""
        found: dict[str, dict] = {}
        for folder in self.folders:
            catalog_file = folder / "catalog.json"
            if not catalog_file.exists():
                continue
            for card in _catalog_entries(catalog_file):
                if card["id"] in found:
                    first = Path(found[card["id"]]["_path"]).parent / "catalog.json"
                    warnings.warn(f"Ignored the entry '{card['id']}' in {catalog_file}: that id is {first}'s. "
                                  f"{NEW_VERSION_FIX}, and import it again.", CatalogWarning, stacklevel=2)
                    continue
                if not _is_bundled(folder):
                    card = {k: v for k, v in card.items() if k != "default"}
                found[card["id"]] = {**card, "_path": str(folder / card["file"])}
        return list(found.values())

    def get(self, model_id: str, task: str | None = None, needed_by: str | None = None) -> dict:
        """Card for 'name@version', or the newest version for a bare 'name'. With `task`, a card of another task
        is refused (BadInputError naming what `needed_by` needs) before any work."""
        cards = self.cards()
        exact = [c for c in cards if c["id"] == model_id]
        if not exact:
            exact = sorted((c for c in cards if c["id"].split("@")[0] == model_id), key=lambda c: _version_key(c["id"]))[-1:]
        if not exact:
            known = ", ".join(sorted(c["id"] for c in cards)) or "none"
            raise ModelError(f"Unknown model '{model_id}'. Known models: {known}.",
                             "Pick one of these, or import yours with `slicerleap models import WEIGHTS CARD`.")
        card = exact[0]
        if task and card["task"] != task:
            fitting = ", ".join(sorted(c["id"] for c in cards if c["task"] == task))
            elsewhere = f"; or run '{card['id']}' with {RUN_WITH[card['task']]}" if card["task"] in RUN_WITH else ""
            raise BadInputError(f"Model '{card['id']}' is a {card['task']} model; `{needed_by or task}` needs a {task} model.",
                                (f"Choose one of: {fitting}" if fitting else f"Import a {task} model with `slicerleap models import`")
                                + elsewhere + ".")
        return card

    def resolve(self, model_id: str | None, task: str, needed_by: str | None = None) -> dict:
        """The model a task runs: `model_id` checked against `task`, or the default for `task`."""
        return self.get(model_id, task, needed_by) if model_id else self.default_for(task)

    @property
    def defaults_file(self) -> Path:
        return self.user_folder / "defaults.json"

    def user_defaults(self) -> dict:
        if not self.defaults_file.exists():
            return {}
        content = read_json_file(self.defaults_file, "model defaults file")
        if not isinstance(content, dict):
            raise ModelError(f"The model defaults file '{self.defaults_file}' is not a JSON object.",
                             "Delete it and choose again with `slicerleap models default ID`.")
        return content

    def set_default(self, model_id: str) -> dict:
        """Make `model_id` (its exact version, so a later import does not move it) the default of its task."""
        card = self.get(model_id)
        with self._lock():
            write_json_atomically(self.defaults_file, {**self.user_defaults(), card["task"]: card["id"]}, indent=2)
        return card

    def default_for(self, task: str, module: str | None = None) -> dict:
        every = [c for c in self.cards() if c["task"] == task]
        chosen = self.user_defaults().get(task)
        if chosen:
            card = next((c for c in every if c["id"] == chosen), None)
            if card is None:  # the user's choice is gone: say so rather than run another network
                raise ModelError(f"Your default {task} model '{chosen}' is not installed.",
                                 f"Import it again, choose another with `slicerleap models default ID`, "
                                 f"or delete {self.defaults_file} to use the bundled default.")
            if module is None or card.get("module") == module:
                return card
        cards = [c for c in every if module is None or c.get("module") == module]
        if not cards:
            raise ModelError(f"No {task} model is installed.", "Import one with `slicerleap models import`.")
        return sorted(cards, key=lambda c: (c.get("default", False), _version_key(c["id"])))[-1]

    def check_new_id(self, model_id: str) -> None:
        """Before a training starts: its model's id must be free, or the trained weights could not be registered."""
        if any(c["id"] == model_id for c in self.cards()):
            raise BadInputError(f"A model with the id '{model_id}' is already in the catalog.",
                                f"{NEW_VERSION_FIX} (--id), before training.")

    def register(self, weights: str | Path, card: dict) -> dict:
        """Copy weights into the user folder and add the card. A card without sha256 gets the file's;
        a card with one must match the file. An id already in the catalog is refused unless its weights are the same
        (then nothing changes: the first card stays); a "default" flag is dropped (see set_default)."""
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
        card = {k: v for k, v in card.items() if not k.startswith("_") and k != "default"}
        if not isinstance(card.get("id"), str):
            validate_card(card)  # names the missing id before it is used for the file name
        card["sha256"] = digest
        card["file"] = card["id"].replace("@", "-") + ".safetensors"
        card = json.loads(json.dumps(card))  # as stored (tuples become lists), so an identical re-import compares equal
        validate_card(card)
        folder = self.user_folder
        catalog_file = folder / "catalog.json"
        with self._lock():  # the check, the copy and the write as one step, or concurrent imports lose entries
            existing = next((c for c in self.cards() if c["id"] == card["id"]), None)
            if existing is not None and existing["sha256"] == digest:
                return existing  # the same network again (a coordinator and a site on one machine): kept as first registered
            if existing is not None:
                raise ModelError(f"A model with the id '{card['id']}' is already in the catalog; another network or card "
                                 "under that id would change what it runs.", f"{NEW_VERSION_FIX}, in the card's \"id\".")
            _copy_atomically(weights, folder / card["file"])
            entries = _catalog_entries(catalog_file) if catalog_file.exists() else []
            entries = [c for c in entries if c["id"] != card["id"]] + [card]
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
