"""`manifest.json`: what a run wrote, from what, and with which options; written last."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_text

MANIFEST_FILE = "manifest.json"


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    """Write the manifest atomically; it holds no timestamps, so equal runs give equal bytes."""
    path = Path(out_dir) / MANIFEST_FILE
    write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path
