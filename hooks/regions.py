"""Azure region names: the public cloud's list kept in the repo (`azure_regions.json`), display names, suggestions.

Azure accepts a region by its short name (`westeurope`) or its display name (`West Europe`), without regard to
case. The offline plan cannot ask a subscription which regions it has, so it checks against this list; sovereign
clouds and regions newer than the list need `allowUnknownRegions: true`.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path

REGIONS_FILE = Path(__file__).with_name("azure_regions.json")


def region_key(name: str) -> str:
    """The short form Azure compares: no case, no spaces ("West Europe" is westeurope)."""
    return name.replace(" ", "").lower()


@functools.cache
def known_regions() -> dict[str, str]:
    """Short name -> display name, from the list kept in the repo."""
    doc = json.loads(REGIONS_FILE.read_text())
    return {r["name"]: r["displayName"] for r in doc["regions"]}


def normalize_region(name: str) -> str | None:
    """The short name of a known region written either way, else None."""
    key = region_key(name)
    return key if key in known_regions() else None


def closest_region(name: str) -> str | None:
    """The known short name closest to a misspelt one, if any is close."""
    key = region_key(name)
    matches = difflib.get_close_matches(key, list(known_regions()), n=1, cutoff=0.75)
    return matches[0] if matches else None
