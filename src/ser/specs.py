"""Portable descriptions of objects for checkpoints: ``{"target": "module.Class", "kwargs"}``.

A checkpoint stores how to rebuild its network and segment policy, so inference needs no
config; :func:`spec` writes such a description and :func:`from_spec` rebuilds the object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hydra.utils import get_class


def spec(target: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The description of ``target(**kwargs)``.

    Example:
        >>> spec(dict, {"a": 1})
        {'target': 'builtins.dict', 'kwargs': {'a': 1}}
    """
    return {"target": f"{target.__module__}.{target.__qualname__}", "kwargs": kwargs}


def from_spec(description: dict[str, Any], **extra: Any) -> Any:
    """The object described by :func:`spec` (nested descriptions in ``kwargs`` too), with
    ``extra`` keyword arguments added.

    Example:
        >>> from_spec(spec(dict, {"a": 1}), b=2)
        {'a': 1, 'b': 2}
    """
    kwargs = {
        k: from_spec(v) if isinstance(v, dict) and "target" in v else v
        for k, v in description["kwargs"].items()
    }
    return get_class(description["target"])(**kwargs, **extra)
