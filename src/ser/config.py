"""Where the Hydra configs are. Importing this module registers the ``ser.*`` resolvers
they use (:mod:`ser.resolvers`), so any code that composes them imports it first."""

from __future__ import annotations

import os
from pathlib import Path

from ser.resolvers import register_resolvers

#: the repository's ``conf/`` (the package is installed in editable mode by ``make install``)
CONFIG_DIR = Path(os.environ.get("SER_CONFIG_DIR", Path(__file__).resolve().parents[2] / "conf"))

register_resolvers()
