"""Compose a config of conf/ as an entry point would, for calling its command in-process."""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ser.config import CONFIG_DIR


def compose_tool(config_name: str, overrides: list[str], **kwargs: Any):
    """``config_name`` (``predict``, ``evaluate``, ``config``) composed with ``overrides``;
    ``kwargs`` go to :func:`hydra.compose` (e.g. ``return_hydra_config=True``)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            return compose(config_name, overrides=overrides, **kwargs)
    finally:
        GlobalHydra.instance().clear()
