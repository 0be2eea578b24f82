"""What a ``train.py`` checkpoint holds besides the weights, and reading it back.

Lightning writes the three parts with the weights:

- ``hyper_parameters``: :class:`~ser.module.SERModule`'s arguments, the network as a Hydra
  ``_target_`` node, so ``SERModule.load_from_checkpoint`` rebuilds it;
- ``SERDataModule``: the fold's preprocessing (``SERDataModule.state_dict``): classes,
  corpus, fold, feature config, normalisation statistics, padding, segment length and
  evaluation segmenting (a ``_target_`` node);
- ``ser``: the format version and the training precision.

:func:`read` checks the version. Checkpoints of format 1 (``checkpoint["ser"]`` held
everything, objects as ``{"target", "kwargs"}``) are converted on reading, so they still
load for inference and evaluation; resuming training from one is refused
(:meth:`ser.module.SERModule.on_load_checkpoint`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ser.errors import CheckpointError

#: the layout written by this version
FORMAT = 2
#: where Lightning keeps the data module's state (its class's qualified name)
DATA_KEY = "SERDataModule"


def node(target: Callable[..., Any], kwargs: Mapping[str, Any], *, partial: bool = False) -> dict:
    """The Hydra config node of ``target(**kwargs)`` (``partial``: of the factory).

    Example:
        >>> node(dict, {"a": 1}, partial=True)
        {'_target_': 'builtins.dict', '_partial_': True, 'a': 1}
    """
    flags = {"_partial_": True} if partial else {}
    return {"_target_": f"{target.__module__}.{target.__qualname__}", **flags, **kwargs}


def factory_node(factory: Callable[..., Any]) -> dict[str, Any]:
    """The ``_partial_`` node of a factory (a ``functools.partial`` from Hydra, or a class).

    Example:
        >>> import functools
        >>> factory_node(functools.partial(dict, a=1))
        {'_target_': 'builtins.dict', '_partial_': True, 'a': 1}
    """
    if isinstance(factory, functools.partial):
        return node(factory.func, dict(factory.keywords), partial=True)
    return node(factory, {}, partial=True)


def _node_of_spec(spec: Any) -> Any:
    """Format 1's ``{"target", "kwargs"}`` descriptions as ``_target_`` nodes."""
    if isinstance(spec, dict) and set(spec) == {"target", "kwargs"}:
        return {
            "_target_": spec["target"],
            **{k: _node_of_spec(v) for k, v in spec["kwargs"].items()},
        }
    return spec


def _upgrade_format_1(checkpoint: dict[str, Any]) -> dict[str, Any]:
    meta = checkpoint["ser"]
    upgraded = dict(checkpoint)
    upgraded["hyper_parameters"] = {
        "name": meta["name"],
        "class_names": meta["class_names"],
        "net": _node_of_spec(meta["net"]) | {"_partial_": True},
        "combine": meta["combine"],
    }
    upgraded[DATA_KEY] = {
        "classes": meta["class_names"],
        "corpus": meta.get("corpus"),
        "fold": meta.get("fold"),
        "features": meta["features"],
        "normalizer": meta["normalizer"],
        "padding": meta.get("padding", "mean"),  # not recorded: mean, the default
        "segment_frames": meta["segment_frames"],
        "eval_segments": _node_of_spec(meta["eval_segments"]),
    }
    upgraded["ser"] = {"format": FORMAT, "precision": meta.get("precision", "32-true")}
    return upgraded


def _load_legacy(path: Path) -> dict[str, Any]:
    """A checkpoint in torch's legacy (pre-zip) serialisation, which cannot be
    memory-mapped: read whole."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({err})") from err


def read(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` in this version's layout, its tensors memory-mapped.

    Raises :class:`~ser.errors.CheckpointError` naming the file when it is missing, not a
    PyTorch checkpoint, not written by ``train.py``, or of an unknown format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise CheckpointError(f"{path} is not a PyTorch checkpoint ({err})") from err
        checkpoint = _load_legacy(path)
    except Exception as err:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({err})") from err
    meta = checkpoint.get("ser") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a ser checkpoint (no 'ser' metadata): use a .ckpt written by "
            "train.py (<run dir>/checkpoints/)"
        )
    version = meta.get("format")
    if version == 1:
        return current_names(_hops_in_seconds(_upgrade_format_1(checkpoint)))
    if version != FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}, which this version of ser cannot read "
            f"(it reads formats 1 and {FORMAT}): use the ser version that wrote it, or retrain"
        )
    return current_names(_hops_in_seconds(checkpoint))


#: module arguments that some checkpoints record and the module does not take, dropped on
#: reading: the class-weighted loss is switched by ``balance=loss`` alone (the data module's
#: weights)
RETIRED_MODULE_ARGUMENTS = ("use_class_weights",)
#: network arguments that some checkpoints record under another name, renamed on reading:
#: ADSRNN's window mixing (``model.combine`` is the segment -> utterance rule)
RENAMED_NET_ARGUMENTS = {"ser.models.ADSRNN": {"combine": "window_combine"}}


def current_names(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The module's recorded arguments under this version's names (see
    :data:`RETIRED_MODULE_ARGUMENTS` and :data:`RENAMED_NET_ARGUMENTS`)."""
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict):
        return checkpoint
    hparams = {k: v for k, v in hparams.items() if k not in RETIRED_MODULE_ARGUMENTS}
    net = hparams.get("net")
    if isinstance(net, dict):
        renames = RENAMED_NET_ARGUMENTS.get(str(net.get("_target_")), {})
        hparams["net"] = {renames.get(k, k): v for k, v in net.items()}
    return checkpoint | {"hyper_parameters": hparams}


def _hops_in_seconds(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Sliding evaluation segments recorded with a hop in log-mel frames (``hop``) as a hop
    in seconds (``hop_s``), the unit segment lengths are given in."""
    data = checkpoint.get(DATA_KEY) or {}
    seconds_per_frame = data.get("features", {}).get("hop_ms", 10.0) / 1000

    def convert(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = {k: convert(v) for k, v in node.items()}
        if str(node.get("_target_", "")).endswith(".Sliding") and "hop" in node:
            node["hop_s"] = node.pop("hop") * seconds_per_frame
        return node

    if "eval_segments" in data:
        data["eval_segments"] = convert(data["eval_segments"])
    return checkpoint
