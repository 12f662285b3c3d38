"""`slicerleap models list|import|default`: the model catalog."""
from __future__ import annotations

import json


def cmd_models(args) -> int:
    from ..models import get_catalog

    catalog = get_catalog()
    if args.models_command == "import":
        from ..models.catalog import read_card_file

        registered = catalog.register(args.weights, read_card_file(args.card))
        print(f"registered {registered['id']} (sha256 {registered['sha256'][:12]}…) in {catalog.user_folder}")
        return 0
    if args.models_command == "default":
        card = catalog.set_default(args.id)
        print(f"default {card['task']} model: {card['id']} (in {catalog.defaults_file})")
        return 0
    cards = catalog.cards()
    if args.json:  # one JSON object per line, for scripts
        for card in cards:
            print(json.dumps({k: v for k, v in card.items() if k in ("id", "task", "modality", "title", "training_data", "domain")}))
        return 0
    print(models_table(cards, {task: _default_id(catalog, task) for task in sorted({c["task"] for c in cards})}))
    return 0


def _default_id(catalog, task: str) -> str | None:
    from ..errors import ModelError

    try:
        return catalog.default_for(task)["id"]
    except ModelError:  # no default for the task (or the user's choice is gone): none marked
        return None


def models_table(cards: list[dict], defaults: dict) -> str:
    """The installed models as a Markdown-style table, the default of each task marked with *."""
    from ..models.domain import describe_expectation

    rows = [("", "id", "task", "expects", "title")]
    for card in sorted(cards, key=lambda c: (c["task"], c["id"])):
        expects = describe_expectation(card) if card.get("domain") else f"{card.get('modality', 'any')} (no declared domain)"
        rows.append(("*" if defaults.get(card["task"]) == card["id"] else "", card["id"], card["task"], expects, card.get("title", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    return "\n".join(lines + ["", "* the default of its task (`slicerleap models default ID` changes it); --json for scripts"])


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="list or import models, or choose your default")
    msub = p.add_subparsers(dest="models_command", required=True)
    listing = msub.add_parser("list", help="list installed models: a table, the default of each task marked")
    listing.add_argument("--json", action="store_true", help="one JSON object per model and line instead (for scripts)")
    imp = msub.add_parser("import", help="register a user model offline: WEIGHTS.safetensors CARD.json")
    imp.add_argument("weights", help="the model's weights (.safetensors; its sha256 is recorded and checked at every load)")
    imp.add_argument("card", help="its card (JSON: id, task, architecture, input, labels...; Resources/models/catalog.schema.json)")
    msub.add_parser("default", help="make a model the default of its task (your choice, kept in models/defaults.json)").add_argument("id", help="the model id, name@x.y.z")
    p.set_defaults(func=cmd_models)
