"""Model catalog: cards validated by a JSON schema, safetensors weights verified by sha256."""
from .catalog import ModelCatalog, get_catalog
from .weights import load_verified_state_dict, sha256_of

__all__ = ["ModelCatalog", "get_catalog", "load_verified_state_dict", "sha256_of"]
