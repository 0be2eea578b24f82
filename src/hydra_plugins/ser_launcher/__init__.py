"""Hydra launcher plugin of the ser project: ``hydra/launcher=ser_local``."""
