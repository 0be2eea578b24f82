"""Data pipeline: corpora -> cached 3D log-mel features -> segments -> folds -> loaders."""

from ser.data.datamodule import SERDataModule

__all__ = ["SERDataModule"]
