"""Names of a run's model and front-end in run folders, ``results.json`` and tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: openSMILE feature set and level -> the name of its config (``features=<name>``)
SMILE_TAGS = {
    ("eGeMAPSv02", "functionals"): "egemaps",
    ("ComParE_2016", "functionals"): "compare",
    ("eGeMAPSv02", "lld"): "egemaps_lld",
}


def features_tag(features: Any) -> str:
    """A short name of the front-end a ``features`` config node describes, for run folders
    and result rows; empty for the 3D log-mel front-end (the default), so log-mel runs keep
    names without a front-end tag.

    Example:
        >>> features_tag({"_target_": "ser.data.features.LogMel3D", "n_mels": 40})
        ''
        >>> features_tag({"_target_": "ser.data.smile.OpenSmile", "feature_set": "eGeMAPSv02",
        ...               "feature_level": "functionals"})
        'egemaps'
        >>> features_tag({"_target_": "ser.data.ssl.SSLEncoder", "model": "microsoft/wavlm-base",
        ...               "layer": 6})
        'wavlm-base-L6'
    """
    target = str(features.get("_target_", ""))
    if target.endswith("LogMel3D"):
        return ""
    if target.endswith("OpenSmile"):
        key = (features.get("feature_set"), features.get("feature_level"))
        return SMILE_TAGS.get(key, f"{key[0]}-{key[1]}")
    if target.endswith("SSLEncoder"):
        name = Path(str(features.get("model"))).name
        layers = features.get("layers")
        which = f"L{layers[0]}-{layers[1]}" if layers else f"L{features.get('layer')}"
        return f"{name}-{which}"
    return target.rsplit(".", 1)[-1].lower()


def model_label(name: str, features: Any) -> str:
    """The name of a model's runs and result rows: the model, and the front-end unless it
    is 3D log-mel (``linear-egemaps``, ``probe``, ``adsrnn``).

    Example:
        >>> model_label("adsrnn", {"_target_": "ser.data.features.LogMel3D"})
        'adsrnn'
    """
    tag = features_tag(features)
    return f"{name}-{tag}" if tag else str(name)
