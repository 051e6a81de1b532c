"""Templates without the values that change when code, not infrastructure, changes."""

from __future__ import annotations

import json
import re
from typing import Any

_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
_INLINE_SCRIPT = re.compile(r"echo '[A-Za-z0-9+/=]{200,}' \| base64 -d")  # code shipped inside a script


def normalise_template(template: dict[str, Any]) -> dict[str, Any]:
    """Asset hashes (Lambda zips, Glue scripts, image tags, aws:asset:* metadata) and code inlined into
    scripts (the notebook's idle check) become placeholders,
    and the bootstrap-version parameter and rule go: a code edit then leaves the snapshot alone, while
    any change to a resource shows."""
    text = _ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True))
    text = _INLINE_SCRIPT.sub("echo '<inline-script>' | base64 -d", text)
    normalised = json.loads(text)
    normalised.get("Parameters", {}).pop("BootstrapVersion", None)
    normalised.get("Rules", {}).pop("CheckBootstrapVersion", None)
    for section in ("Parameters", "Rules"):
        if section in normalised and not normalised[section]:
            del normalised[section]
    return normalised
