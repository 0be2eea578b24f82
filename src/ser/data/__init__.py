"""Data pipeline: corpora -> cached 3D log-mel features -> segments -> folds -> loaders.

``SERDataModule`` is imported lazily so that metadata tools (``python -m ser.inspect``)
do not pay for importing Lightning.
"""

from typing import Any

__all__ = ["SERDataModule"]


def __getattr__(name: str) -> Any:
    if name == "SERDataModule":
        from ser.data.datamodule import SERDataModule

        return SERDataModule
    raise AttributeError(f"module 'ser.data' has no attribute {name!r}")
