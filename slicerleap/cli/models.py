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
    for card in catalog.cards():
        print(json.dumps({k: v for k, v in card.items() if k in ("id", "task", "modality", "title", "training_data")}))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="list or import models, or choose your default")
    msub = p.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="list installed models (JSON lines)")
    imp = msub.add_parser("import", help="register a user model offline: WEIGHTS.safetensors CARD.json")
    imp.add_argument("weights")
    imp.add_argument("card")
    msub.add_parser("default", help="make a model the default of its task (your choice, kept in models/defaults.json)").add_argument("id")
    p.set_defaults(func=cmd_models)
