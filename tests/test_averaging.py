"""Weight averaging (ser/averaging.py) in real fits: the averaged network is validated, saved,
tested and predicted with; resuming restores the average and the trained weights.

``debug=fast`` fits of ASRNN: 2 epochs of 3 optimiser steps, a validation after each epoch.
:class:`RecordWeights`, added to the run's callbacks, keeps the network's weights after every
optimiser step, at each validation and at the test; the averages are recomputed from the
recorded weights here, independently of the callback.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from ser.averaging import NetWeightAveraging
from ser.errors import ConfigError
from ser.predict import Predictor
from ser.task import train

Weights = dict[str, torch.Tensor]


def snapshot(net: torch.nn.Module) -> Weights:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


class RecordWeights(L.Callback):
    """Saves ``{"trained": [...], "validated": {step: ...}, "tested": ...}`` to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.record = {"trained": [], "validated": {}, "tested": None}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record["trained"].append(snapshot(pl_module.net))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *args) -> None:
        if batch_idx == 0:
            self.record["validated"][trainer.global_step] = snapshot(pl_module.net)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, *args) -> None:
        if batch_idx == 0:
            self.record["tested"] = snapshot(pl_module.net)

    def on_test_end(self, trainer, pl_module) -> None:
        torch.save(self.record, self.path)


def fit(compose_config, run_dir: Path, overrides: list[str]) -> tuple[dict, dict]:
    """results.json's dict and the recorded weights of a debug=fast ASRNN fit."""
    record = run_dir.parent / f"{run_dir.name}-weights.pt"
    cfg = compose_config(
        [
            "model=asrnn",
            "debug=fast",
            "print_config=false",
            f"+callbacks.record._target_={__name__}.RecordWeights",
            f"+callbacks.record.path={record}",
            *overrides,
        ],
        run_dir=run_dir,
    )
    return train(cfg), torch.load(record)


def net_weights(state_dict: Weights) -> Weights:
    return {k.removeprefix("net."): v for k, v in state_dict.items() if k.startswith("net.")}


def close(a: Weights, b: Weights) -> bool:
    return a.keys() == b.keys() and all(
        torch.allclose(a[k].float(), b[k].float(), rtol=1e-5, atol=1e-6) for k in a
    )


def ema(trained: list[Weights], decay: float) -> list[Weights]:
    """The EMA after each step: the first step's weights, then decay * avg + (1 - decay) * w."""
    averages = [trained[0]]
    for weights in trained[1:]:
        prev = averages[-1]
        averages.append(
            {
                k: decay * prev[k] + (1 - decay) * w if w.is_floating_point() else w
                for k, w in weights.items()
            }
        )
    return averages


def test_ema_weights_are_validated_saved_tested_and_predicted_with(
    compose_config, emodb_root, tmp_path
):
    results, record = fit(
        compose_config, tmp_path / "run", ["averaging=ema", "callbacks.weight_averaging.decay=0.5"]
    )
    trained = record["trained"]
    assert len(trained) == 6
    averages = ema(trained, 0.5)
    # each validation (after steps 3 and 6) ran on the average, not on the trained weights
    assert sorted(record["validated"]) == [3, 6]
    for step, weights in record["validated"].items():
        assert close(weights, averages[step - 1])
        assert not close(weights, trained[step - 1])
    # the checkpoint chosen on val/uar: averaged weights in state_dict, trained ones kept
    best = torch.load(results["best_checkpoint"], weights_only=False)
    step = best["global_step"]
    assert close(net_weights(best["state_dict"]), averages[step - 1])
    assert close(net_weights(best["current_model_state"]), trained[step - 1])
    # the test ran on the averaged weights of that checkpoint
    assert close(record["tested"], net_weights(best["state_dict"]))
    # and inference (ser.predict) predicts with them: the test step's probabilities
    predictor = Predictor.from_checkpoint(results["best_checkpoint"], device="cpu")
    assert close(snapshot(predictor.net), averages[step - 1])
    tested = results["predictions"][:5]
    paths = [emodb_root / "wav" / f"{p['id']}.wav" for p in tested]
    predictions = predictor.predict_files(paths, progress=False)
    for expected, prediction in zip(tested, predictions, strict=True):
        assert prediction.probs == pytest.approx(expected["probs"], abs=1e-5)
    # (which the trained weights would not give)
    predictor.net.load_state_dict(net_weights(best["current_model_state"]))
    raw = predictor.predict_files(paths, progress=False)
    assert any(
        r.probs != pytest.approx(e["probs"], abs=1e-5) for r, e in zip(raw, tested, strict=True)
    )


def test_swa_averages_equally_from_its_start(compose_config, tmp_path):
    results, record = fit(
        compose_config, tmp_path / "run", ["averaging=swa", "callbacks.weight_averaging.start=0.5"]
    )
    trained = record["trained"]
    # 6 steps, start 0.5: the trained weights up to step 3, then the mean of steps 3 to k
    assert close(record["validated"][3], trained[2])
    mean = {
        k: torch.stack([w[k].float() for w in trained[2:]]).mean(0) if v.is_floating_point() else v
        for k, v in trained[5].items()
    }
    assert close(record["validated"][6], mean)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert close(net_weights(last["state_dict"]), mean)
    assert results["steps_trained"] == 6


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_a_resumed_fit_continues_the_average(compose_config, tmp_path):
    ema_options = ["averaging=ema", "callbacks.weight_averaging.decay=0.5"]
    whole, _ = fit(compose_config, tmp_path / "whole", [*ema_options, "trainer.max_epochs=3"])
    fit(compose_config, tmp_path / "part", ema_options)
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    fit(
        compose_config,
        tmp_path / "part",
        [*ema_options, "trainer.max_epochs=3", f"ckpt_path={last}"],
    )
    uninterrupted = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == uninterrupted["global_step"] == 9
    for key in ("state_dict", "current_model_state"):
        assert close(net_weights(resumed[key]), net_weights(uninterrupted[key]))
    assert not close(
        net_weights(resumed["state_dict"]), net_weights(resumed["current_model_state"])
    )
    assert whole["steps_trained"] == 9


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"decay": 1.0}, r"callbacks\.weight_averaging\.decay=1\.0"),
        ({"start": 1.0}, r"callbacks\.weight_averaging\.start=1\.0"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        NetWeightAveraging(**options)
