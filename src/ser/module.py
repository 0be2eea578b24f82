"""SERModule: trains and evaluates any network the same way.

Loss: NLL of the network's log-probabilities (optionally class-weighted by the data
module), plus optionally ``mse_weight * MSE(probabilities, one-hot)`` (the original code's
term) and a center loss (ADRNN). With label smoothing or a mixing augmentation (mixup) the
NLL becomes the soft-target cross-entropy of :func:`ser.losses.soft_nll_loss`, with the same
class weighting. Batch-level augmentations (:mod:`ser.augment`) run in ``training_step``
only, on the training device. Metrics at utterance level after combining segment
probabilities (:mod:`ser.metrics`): ``val/uar``, ``val/wa``, ``val/f1``, ``val/seg_uar``,
``val/uar_best``, ``test/uar``, ``test/wa``, ``test/f1``, ``test/seg_uar``,
``test/recall_<class>``. ``f1`` is macro-F1 (:func:`ser.metrics.macro_f1`), computed like UAR
from the epoch's utterance-level confusion matrix, so no training step waits on it.

A checkpoint carries everything inference needs (:mod:`ser.checkpoint`): this module's
arguments with the network as a ``_target_`` node (``hyper_parameters``, so
:meth:`SERModule.load_from_checkpoint` rebuilds it), the data module's fold preprocessing
(``SERDataModule``) and the format version (``ser``). Test predictions per utterance are
the task's to record (:func:`ser.record.prediction_records`): the module keeps the
utterance indices, predicted classes and probabilities of the test step.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MaxMetric

from ser.augment import Augmentations
from ser.checkpoint import FORMAT, current_names, factory_node, read
from ser.errors import ConfigError
from ser.losses import CenterLoss, smooth_labels, soft_nll_loss
from ser.metrics import COMBINE, SegmentUAR, UtteranceMetrics
from ser.models.blocks import NetOptionError
from ser.schedules import RUN_LENGTH

NetFactory = Callable[..., nn.Module]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run stops instead of training on."""


class LossGuard:
    """Stops training at the first NaN or infinite training loss.

    :meth:`update` keeps, on the loss's device and without a host sync, the step, loss and
    learning rate of the first non-finite loss and the last finite loss before it.
    :meth:`check` reads them (one sync) and raises :class:`NonFiniteLossError`. Checking
    every step would stall the GPU queue once per step, so :class:`SERModule` checks every
    step on the CPU (where reading costs nothing), every ``trainer.log_every_n_steps`` steps
    on an accelerator (when Lightning copies the logged loss to the host anyway), and
    before every validation and at the end of training, so no checkpoint, score or result
    ever comes from a diverged model.

    Lightning's ``EarlyStopping(check_finite=True)`` does not serve: it reads the monitored
    value at validation only, and ends the fit as if it had converged, so the run would still
    be tested and recorded as a result instead of failing with the step that diverged.
    """

    def __init__(self) -> None:
        #: [first non-finite step (-1: none), its loss, last finite loss, learning rate]
        self.state: Tensor | None = None

    def update(self, loss: Tensor, *, step: int, lr: float) -> None:
        loss = loss.detach().float()
        if self.state is None:
            self.state = torch.tensor([-1.0, math.nan, math.nan, math.nan], device=loss.device)
        first_step, bad_loss, last_finite, bad_lr = self.state
        healthy = first_step < 0
        finite = torch.isfinite(loss)
        first = healthy & ~finite
        self.state = torch.stack(
            [
                torch.where(first, float(step), first_step),
                torch.where(first, loss, bad_loss),
                torch.where(healthy & finite, loss, last_finite),
                torch.where(first, float(lr), bad_lr),
            ]
        )

    def check(self) -> None:
        """Raise :class:`NonFiniteLossError` if a non-finite loss was seen."""
        if self.state is None:
            return
        step, loss, last_finite, lr = self.state.tolist()
        if step < 0:
            return
        before = "none before it" if math.isnan(last_finite) else f"{last_finite:.6g}"
        raise NonFiniteLossError(
            f"training loss is {loss} at step {int(step)} (last finite loss: {before}, "
            f"learning rate {lr:.3g}): training diverged; lower optimizer.lr or set "
            "trainer.gradient_clip_val"
        )


def _shape_kwargs(input_shape: Sequence[int] | None) -> dict[str, int]:
    """The network's input-size arguments for a segment shape ``(channels, frames, dims)``."""
    if input_shape is None:
        return {}
    channels, frames, dims = (int(v) for v in input_shape)
    return {"in_channels": channels, "frames": frames, "n_mels": dims}


class SERModule(L.LightningModule):
    """Lightning wrapper of one network.

    Args:
        name: model name for logs and results (``adsrnn``).
        net: network factory called with ``num_classes`` (a Hydra partial), or its
            ``_partial_`` config node (as stored in checkpoints).
        class_names: class names in output order (from the data module).
        input_shape: ``(channels, frames, dims)`` of a segment (the data module's
            ``input_shape``: the front-end's channels and dims, the segment length in its
            frames), given to ``net`` as ``in_channels``, ``frames`` and ``n_mels``;
            ``None``: ``net`` has them already (checkpoints whose network arguments include
            them).
        optimizer: optimiser factory called with parameter groups (a Hydra partial);
            ``None`` for a module loaded to evaluate only.
        scheduler: optional scheduler factory called with the optimiser (a Hydra partial);
            one with a ``total_steps`` or ``T_max`` keyword (:data:`ser.schedules.RUN_LENGTH`)
            also gets the run's optimiser steps, ``trainer.estimated_stepping_batches``.
        scheduler_interval: ``epoch`` or ``step`` (``step``: once per optimiser step).
        mse_weight: weight of the MSE(probabilities, one-hot) term (0 disables it).
        center_loss: optional :class:`~ser.losses.CenterLoss` factory called with
            ``num_classes`` and ``dim`` (the network's ``embedding_dim``), or its node.
        combine: how segment probabilities form an utterance's (``max`` or ``mean``).
        label_smoothing: share of each target spread evenly over the classes (0: none); the
            MSE and center-loss terms keep the unsmoothed targets.
        augment: batch-level training augmentations (``augment=specaugment``, ``mixup``),
            applied to training batches only.
        compile_net: compile the network with ``torch.compile`` when the run starts:
            ``True`` (``compile=true``) with torch's defaults, or a dict of its keyword
            arguments (``compile={mode: max-autotune}``). In place (``nn.Module.compile``):
            the weights and checkpoint keys stay the same, so checkpoints load either way.
    """

    def __init__(
        self,
        *,
        name: str,
        net: NetFactory | Mapping[str, Any],
        class_names: Sequence[str],
        input_shape: Sequence[int] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        mse_weight: float = 0.0,
        center_loss: Callable[..., CenterLoss] | Mapping[str, Any] | None = None,
        combine: str = "max",
        label_smoothing: float = 0.0,
        augment: Augmentations | None = None,
        compile_net: bool | Mapping[str, Any] = False,
    ) -> None:
        super().__init__()
        if combine not in COMBINE:
            raise ConfigError(f"model.combine={combine!r}: choose one of {COMBINE}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(
                f"model.label_smoothing={label_smoothing}: give a value in [0, 1) (0: none)"
            )
        self.name = name
        self.class_names = list(class_names)
        net, center_loss = _factory(net), _factory(center_loss)
        try:
            self.net = net(num_classes=len(self.class_names), **_shape_kwargs(input_shape))
        except NetOptionError as err:
            raise ConfigError(f"model.net.{err} (model={name})") from err
        except ValueError as err:
            raise ConfigError(f"model.net (model={name}): {err}") from err
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.mse_weight = mse_weight
        self.center_loss = (
            center_loss(num_classes=len(self.class_names), dim=self.net.embedding_dim)
            if center_loss is not None
            else None
        )
        self.combine = combine
        self.label_smoothing = float(label_smoothing)
        self.augment = augment
        if augment is not None:
            augment.check_fits(frames=self.net.frames, n_mels=self.net.n_mels)
        self.compile_net = compile_net
        # what evaluation needs to rebuild this module (load_from_checkpoint); the optimiser,
        # schedule and augmentations only train, and the run's config.yaml records them
        self.save_hyperparameters(
            {
                "name": name,
                "class_names": self.class_names,
                "input_shape": None if input_shape is None else list(input_shape),
                "net": factory_node(net),
                "mse_weight": mse_weight,
                "center_loss": None if center_loss is None else factory_node(center_loss),
                "combine": combine,
                "label_smoothing": self.label_smoothing,
            }
        )
        self.train_uar = SegmentUAR(num_classes=len(self.class_names))
        self.val_uar_best = MaxMetric()
        self.register_buffer("class_weights", None, persistent=False)
        self.val_metrics: UtteranceMetrics | None = None
        self.test_metrics: UtteranceMetrics | None = None
        #: the last test's metrics, and per tested utterance (index into the test split's
        #: utterances) the predicted class index and probabilities
        self.test_results: dict[str, Any] | None = None
        self.loss_guard = LossGuard()
        #: the run's length in optimiser steps when its schedule spans the run (checkpoints
        #: record it), and that of the checkpoint resumed from
        self.schedule_steps: int | None = None
        self.resumed_schedule_steps: int | None = None

    # ------------------------------------------------------------------ set-up
    def configure_model(self) -> None:
        """``compile_net``: compile the network once, on its device (Lightning calls this hook
        at every fit and test)."""
        if self.compile_net and not getattr(self.net, "_compiled_call_impl", None):
            options = dict(self.compile_net) if isinstance(self.compile_net, Mapping) else {}
            self.net.compile(**options)
            if self.center_loss is not None:  # the training step calls embed and classify
                self.embed_and_classify = torch.compile(self.embed_and_classify, **options)

    def __getstate__(self) -> dict[str, Any]:
        """Without the compiled ``embed_and_classify``: it is bound to this instance, so a
        copy would train this module's network (and it does not pickle)."""
        state = super().__getstate__()
        state.pop("embed_and_classify", None)
        return state

    def setup(self, stage: str) -> None:
        """Take the fold's class weights and split tables from the data."""
        dm = self.trainer.datamodule
        if list(dm.classes) != self.class_names:
            raise ValueError(f"data classes {list(dm.classes)} != model classes {self.class_names}")
        if dm.class_weights is not None:
            self.class_weights = dm.class_weights.to(self.device)
        metrics = {}
        for split in ("val", "test"):
            dataset = dm.datasets.get(split)  # no test split without testing (a search)
            if dataset is None:
                metrics[split] = None
                continue
            metrics[split] = UtteranceMetrics(
                seg_to_utt=torch.from_numpy(dataset.table.utterance),
                labels=dataset.labels,
                num_classes=len(self.class_names),
                combine=self.combine,
            ).to(self.device)
        self.val_metrics, self.test_metrics = metrics["val"], metrics["test"]

    def forward(self, x: Tensor) -> Tensor:
        """Log-probabilities ``(B, C)`` of segments ``(B, 3, frames, n_mels)``."""
        return self.net(x)

    # ------------------------------------------------------------------ training
    def embed_and_classify(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The network's embedding of ``x`` and its log-probabilities (for a center loss)."""
        embedding = self.net.embed(x)
        return embedding, self.net.classify(embedding)

    def compute_loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, nll, log_probs)`` of a training batch (all terms of the objective).

        ``y`` holds class indices ``(B,)`` or, after mixup, class distributions ``(B, C)``.
        """
        if self.center_loss is not None:
            embedding, log_probs = self.embed_and_classify(x)
            log_probs = log_probs.float()
        else:
            log_probs = self.net(x).float()
        hard = y.ndim == 1
        if hard and not self.label_smoothing:
            nll = F.nll_loss(log_probs, y, weight=self.class_weights)
        else:
            shares = F.one_hot(y, len(self.class_names)).to(log_probs.dtype) if hard else y
            target = smooth_labels(shares, self.label_smoothing)
            nll = soft_nll_loss(log_probs, target, weight=self.class_weights)
        loss = nll
        if self.mse_weight:
            shares = F.one_hot(y, len(self.class_names)).to(log_probs.dtype) if hard else y
            loss = loss + self.mse_weight * F.mse_loss(log_probs.exp(), shares)
        if self.center_loss is not None:
            loss = loss + self.center_loss(embedding, y)
        return loss, nll, log_probs

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x, y = batch["x"], batch["y"]
        target = y
        if self.augment is not None:
            if self.augment.mixes:
                target = F.one_hot(y, len(self.class_names)).float()
            x, target = self.augment(x, target)
        loss, nll, log_probs = self.compute_loss(x, target)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.loss_guard.update(loss, step=self.global_step, lr=lr)
        # after mixup: the class with the larger share of each mixed segment
        self.train_uar.update(log_probs, target.argmax(dim=1) if target.ndim == 2 else y)
        batch_size = len(y)
        # Not on the progress bar: showing it would copy it to the host every step.
        self.log("train/loss", loss, on_step=True, batch_size=batch_size)
        self.log(
            "train/nll", nll, on_step=False, on_epoch=True, sync_dist=True, batch_size=batch_size
        )
        self.log(
            "train/seg_uar", self.train_uar, on_step=False, on_epoch=True, batch_size=batch_size
        )
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = max(1, self.trainer.log_every_n_steps)
        if self.device.type == "cpu" or self.global_step % every == 0:
            self.loss_guard.check()

    def on_validation_start(self) -> None:
        self.loss_guard.check()

    def on_train_end(self) -> None:
        self.loss_guard.check()

    def on_train_start(self) -> None:
        # The sanity check's partial validation must not count as a best score; a resumed
        # run starts from the best score of the checkpoint it resumes.
        self.val_uar_best.reset()
        best = getattr(self.trainer.checkpoint_callback, "best_model_score", None)
        if best is not None:
            self.val_uar_best.update(best.to(self.device))

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.val_metrics.update(batch["seg"], self(batch["x"]).float().exp())

    def on_validation_epoch_end(self) -> None:
        result = self.val_metrics.compute()
        self.val_metrics.reset()
        self.val_uar_best(result["uar"])
        self.log_dict(
            {
                "val/uar": result["uar"],
                "val/wa": result["wa"],
                "val/f1": result["f1"],
                "val/seg_uar": result["seg_uar"],
                "val/uar_best": self.val_uar_best.compute(),
            },
            prog_bar=True,
            sync_dist=True,  # already equal on every rank: this only silences Lightning
        )

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.test_metrics.update(batch["seg"], self(batch["x"]).float().exp())

    def on_test_epoch_end(self) -> None:
        result = self.test_metrics.compute()
        self.test_metrics.reset()
        tested, expected = result["utterances"].numel(), len(self.test_metrics.labels)
        if tested != expected:
            raise ConfigError(
                f"only {tested} of {expected} test utterances were evaluated "
                "(trainer.limit_test_batches?): a partial test set is not a fold's result"
            )
        # None (JSON null) for a class the test speaker has no utterance of
        recall = {
            c: None if r != r else r
            for c, r in zip(self.class_names, result["recall"].tolist(), strict=True)
        }
        self.log_dict(
            {
                "test/uar": result["uar"],
                "test/wa": result["wa"],
                "test/f1": result["f1"],
                "test/seg_uar": result["seg_uar"],
            }
            | {f"test/recall_{c}": result["recall"][i] for i, c in enumerate(self.class_names)},
            sync_dist=True,
        )
        preds = result["preds"].reshape(-1)
        self.test_results = {
            "uar": result["uar"].item(),
            "wa": result["wa"].item(),
            "f1": result["f1"].item(),
            "seg_uar": result["seg_uar"].item(),
            "recall": recall,
            "confusion": {"classes": self.class_names, "matrix": result["confusion"].tolist()},
            "utterances": result["utterances"].reshape(-1).tolist(),
            "preds": preds.tolist(),
            "probs": result["probs"].reshape(len(preds), -1).tolist(),
        }

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        groups = [{"params": list(self.net.parameters())}]
        if self.center_loss is not None:
            groups.append(
                {
                    "params": list(self.center_loss.parameters()),
                    "lr": self.center_loss.lr,
                    "weight_decay": 0.0,
                }
            )
        if self.optimizer_factory is None:
            raise ConfigError(
                f"model {self.name!r} has no optimizer (a module loaded to evaluate only): "
                "give model.optimizer to train it"
            )
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        kwargs = {}
        try:
            parameters = inspect.signature(self.scheduler_factory).parameters
        except (TypeError, ValueError):  # no signature to read: called with the optimiser only
            parameters = {}
        length = next((name for name in RUN_LENGTH if name in parameters), None)
        if length is not None:
            # optimiser steps of the whole run: max_steps, or max_epochs x steps per epoch
            # (limit_train_batches, accumulate_grad_batches), whichever ends first
            total = self.trainer.estimated_stepping_batches
            if math.isinf(total):
                factory = getattr(self.scheduler_factory, "func", self.scheduler_factory)
                raise ConfigError(
                    f"model.scheduler ({getattr(factory, '__qualname__', factory)}) spans the "
                    "whole run, but trainer.max_steps=-1 and trainer.max_epochs=-1 train "
                    "without end: set trainer.max_steps or trainer.max_epochs"
                )
            kwargs[length] = self.schedule_steps = int(total)
            resumed = self.resumed_schedule_steps
            if resumed is not None and resumed != self.schedule_steps:
                raise ConfigError(
                    f"ckpt_path: the checkpoint's learning-rate schedule spans {resumed} "
                    f"optimiser steps and this run's would span {self.schedule_steps}; torch's "
                    "schedulers keep the checkpoint's length, so resume with the training "
                    "length it was written with (trainer.max_steps, trainer.max_epochs), or "
                    "train a new run"
                )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.scheduler_factory(optimizer, **kwargs),
                "monitor": "val/uar",
                "interval": self.scheduler_interval,
            },
        }

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> SERModule:
        """The module a checkpoint holds (as :func:`ser.checkpoint.read` returns it), rebuilt
        from its stored arguments with its weights, without optimiser: for evaluation."""
        module = cls(**checkpoint["hyper_parameters"])
        module.on_load_checkpoint(checkpoint)
        module.load_state_dict(checkpoint["state_dict"])
        return module

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: str | torch.device = "cpu"
    ) -> SERModule:
        """:meth:`from_checkpoint` of a ``train.py`` checkpoint file, its format checked and
        a format-1 checkpoint converted first (:func:`ser.checkpoint.read`; a
        :class:`~ser.errors.CheckpointError` names what is wrong with the file)."""
        return cls.from_checkpoint(read(checkpoint_path)).to(map_location)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another network or of an older format.

        Another network's weights would fail in ``load_state_dict`` with a wall of
        mismatched keys. (The data module refuses another fold, corpus or class set.)
        """
        self.resumed_schedule_steps = checkpoint.get("ser", {}).get("schedule_steps")
        version = checkpoint.get("ser", {}).get("format")
        if version != FORMAT:
            raise ConfigError(
                f"ckpt_path: the checkpoint has format {version!r}, written by an older version "
                f"of ser; this version resumes format {FORMAT} only (python -m ser.evaluate and "
                "ser.predict still read it): retrain, or resume with the version that wrote it"
            )
        stored_net = current_names(checkpoint).get("hyper_parameters", {}).get("net") or {}
        current = self.hparams["net"]
        if stored_net != current:
            changed = sorted(
                k
                for k in {*stored_net, *current}
                if not k.startswith("_") and stored_net.get(k) != current.get(k)
            )
            stored_name = checkpoint.get("hyper_parameters", {}).get("name")
            raise ConfigError(
                f"ckpt_path: the checkpoint holds model {stored_name!r} "
                f"({stored_net.get('_target_')}), not this run's {self.name!r} "
                f"({current['_target_']})"
                + (f" with other model.net settings {changed}" if changed else "")
                + ": give the model= and model.net options it was trained with, or another "
                "checkpoint"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ser"] = {"format": FORMAT, "precision": str(self.trainer.precision)}
        if self.schedule_steps is not None:
            checkpoint["ser"]["schedule_steps"] = self.schedule_steps


def _factory(value: Callable[..., Any] | Mapping[str, Any] | None) -> Callable[..., Any] | None:
    """A factory given as such, or as its ``_partial_`` config node (from a checkpoint)."""
    return hydra.utils.instantiate(value) if isinstance(value, Mapping) else value
