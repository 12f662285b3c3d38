"""Which Flower App a site agrees to run: SlicerLeap's own, pinned by a hash of its files.

Choice: a pinned hash, checked by the site's SuperNode before the app is stored or any of its code runs
(guarded_supernode.py), rather than Flower's trusted entities (`--trusted-entities`, ed25519 app signing).
In flwr 1.42 a SuperNode with trusted entities refuses every app whose bundle carries no signature
record from the SuperLink, and the SuperLink attaches those records only to apps fetched from Flower Hub
(`_get_remote_fab`); an app submitted with `flwr run <folder>`, as SlicerLeap's offline federations do,
has none, so signing would refuse our own app too, and it would need a second key scheme beside the
sites' P-384 node keys. The pin needs no key: every site computes the hash of the app from its own
installed SlicerLeap, so the coordinator can only start the app that this site's version ships.

The hash covers the bundle's files (name and SHA-256 of each member), not the zip bytes, so a zlib that
compresses differently on another platform still gives the same pin."""
from __future__ import annotations

import functools
import hashlib
import io
import zipfile
from pathlib import Path

APP_DIR = Path(__file__).with_name("flower_app")


def app_hash(fab: bytes) -> str:
    """SHA-256 over the sorted (member name, SHA-256 of its content) of a Flower App Bundle (a zip)."""
    with zipfile.ZipFile(io.BytesIO(fab)) as bundle:
        members = sorted(f"{info.filename},{hashlib.sha256(bundle.read(info)).hexdigest()}" for info in bundle.infolist())
    return hashlib.sha256("\n".join(members).encode("utf-8")).hexdigest()


def bundle_app(folder: str | Path = APP_DIR) -> bytes:
    """The app folder as Flower bundles it for `flwr run` (the bytes a SuperNode receives)."""
    from flwr.cli.build import build_fab_from_disk

    return build_fab_from_disk(Path(folder))


@functools.lru_cache(maxsize=1)
def slicerleap_app_hash() -> str:
    """The pin of the SlicerLeap federated app installed here."""
    return app_hash(bundle_app(APP_DIR))


def is_slicerleap_app(fab: bytes, pinned: str) -> bool:
    """True when `fab` holds exactly the pinned app's files; an unreadable bundle is not ours."""
    try:
        return app_hash(fab) == pinned
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
