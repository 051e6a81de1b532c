"""Templates without the values that change when code, not infrastructure, changes."""

from __future__ import annotations

import json
import re
from typing import Any

_HASH = "[0-9a-f]{64}"
_ASSET_REFERENCE = re.compile(rf"(assets-[^/\":\s]+[/:]){_HASH}")
"""An object of the bootstrap's asset bucket (`cdk-<q>-assets-<account>-<region>/<hash>.zip`: Lambda code, Glue
scripts and libraries, the notebooks' zip, in a policy or a script) or an image of its container-asset
repository (`...container-assets-<account>-<region>:<hash>`)."""
_ASSET_FIELDS = {"S3Key": re.compile(rf"^{_HASH}"), "aws:asset:path": re.compile(rf"(?<=^asset\.){_HASH}")}
"""Fields that name an asset by its hash alone: a function's code key, the asset metadata CDK adds."""
_INLINE_SCRIPT = re.compile(r"echo '[A-Za-z0-9+/=]{200,}' \| base64 -d")  # code shipped inside a script
ASSET = "<asset-hash>"


def _masked(value: Any, field: str | None = None) -> Any:
    if isinstance(value, dict):
        return {key: _masked(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, field) for item in value]
    if not isinstance(value, str):
        return value
    if field in _ASSET_FIELDS:
        value = _ASSET_FIELDS[field].sub(ASSET, value)
    value = _ASSET_REFERENCE.sub(rf"\1{ASSET}", value)
    return _INLINE_SCRIPT.sub("echo '<inline-script>' | base64 -d", value)


def normalise_template(template: dict[str, Any]) -> dict[str, Any]:
    """Asset hashes (Lambda zips, Glue scripts, image tags, aws:asset:* metadata) and code inlined into
    scripts (the notebook's idle check) become placeholders, and the bootstrap-version parameter and rule go:
    a code edit then leaves the snapshot alone, while any change to a resource shows. Only where an asset is
    named: any other 64-hex value (the owner tag's hash of the deploying ref) is compared as it is."""
    normalised = _masked(json.loads(json.dumps(template, sort_keys=True)))
    normalised.get("Parameters", {}).pop("BootstrapVersion", None)
    normalised.get("Rules", {}).pop("CheckBootstrapVersion", None)
    for section in ("Parameters", "Rules"):
        if section in normalised and not normalised[section]:
            del normalised[section]
    return dict(normalised)
