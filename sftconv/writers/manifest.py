"""`manifest.json`: what a run wrote, from what, and with which options; written last."""

from __future__ import annotations

import json
from .folder import Folder

MANIFEST_FILE = "manifest.json"


def write_manifest(folder: Folder, manifest: dict) -> None:
    """Write the manifest atomically; it holds no timestamps, so equal runs give equal bytes."""
    folder.write_text(MANIFEST_FILE, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
