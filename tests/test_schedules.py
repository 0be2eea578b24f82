"""Learning-rate schedules (conf/scheduler/*.yaml) over real fits on the shared Emo-DB copy.

Every scheduler option runs with an epoch-based trainer (``debug=fast``: 2 epochs of 2
batches, ``trainer.max_steps=-1``) and a step-based one (``trainer.max_steps=3``,
``trainer.max_epochs=-1``, ending inside the second epoch); the cosine schedule also with
gradient accumulation (3 batches, 2 optimiser steps). :class:`RecordLearningRate`, added to
the run's callbacks by the config, records the learning rate of every optimiser step and
the one after the last.
"""

import itertools
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR

from ser.errors import ConfigError
from ser.schedules import one_cycle, warmup_cosine
from ser.task import train

LR = 1e-3
#: trainer overrides: name -> (overrides, optimiser steps of the run); debug=fast gives
#: max_epochs=2, max_steps=-1 and limit_train_batches=3
TRAINERS = {
    "epochs": (["trainer.limit_train_batches=2"], 4),  # 2 epochs x 2 batches
    "steps": (  # ends inside the second epoch
        ["trainer.limit_train_batches=2", "trainer.max_epochs=-1", "trainer.max_steps=3"],
        3,
    ),
    "accumulate": (["trainer.max_epochs=1", "+trainer.accumulate_grad_batches=2"], 2),  # ceil(3/2)
}


class RecordLearningRate(L.Callback):
    """Writes ``{"steps": [lr of each optimiser step], "after": lr after the last}`` to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.steps: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.steps.append(optimizer.param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module) -> None:
        after = trainer.optimizers[0].param_groups[0]["lr"]
        self.path.write_text(json.dumps({"steps": self.steps, "after": after}))


def fit(compose_config, run_dir: Path, overrides: list[str]) -> tuple[list[float], float]:
    """Fit ASRNN (debug widths, no test); the learning rate of each optimiser step, and after."""
    record = run_dir.parent / "learning_rates.json"
    cfg = compose_config(
        [
            "model=asrnn",
            "debug=fast",
            f"model.optimizer.lr={LR}",
            "test=false",
            "print_config=false",
            f"+callbacks.record_lr._target_={__name__}.RecordLearningRate",
            f"+callbacks.record_lr.path={record}",
            *overrides,
        ],
        run_dir=run_dir,
    )
    train(cfg)
    recorded = json.loads(record.read_text())
    return recorded["steps"], recorded["after"]


@pytest.mark.parametrize("trainer", ["epochs", "steps"])
def test_no_scheduler_keeps_the_learning_rate(compose_config, tmp_path, trainer):
    overrides, steps = TRAINERS[trainer]
    lrs, after = fit(compose_config, tmp_path / "run", ["scheduler=none", *overrides])
    assert len(lrs) == steps
    assert lrs == [LR] * steps and after == LR


@pytest.mark.parametrize("trainer", ["epochs", "steps", "accumulate"])
def test_cosine_decays_once_over_the_whole_run(compose_config, tmp_path, trainer):
    overrides, steps = TRAINERS[trainer]
    lrs, after = fit(compose_config, tmp_path / "run", ["scheduler=cosine", *overrides])
    assert len(lrs) == steps
    assert lrs[0] == pytest.approx(LR)
    assert all(b <= a for a, b in itertools.pairwise(lrs)), f"rises: {lrs}"
    assert lrs[-1] < lrs[0]
    # cosine over exactly the run's optimiser steps: eta_min (0) right after the last one
    expected = [LR * (1 + math.cos(math.pi * k / steps)) / 2 for k in range(steps)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert after == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("trainer", ["epochs", "steps"])
def test_plateau_never_raises_the_learning_rate(compose_config, tmp_path, trainer):
    overrides, steps = TRAINERS[trainer]
    # patience 0: any validation without improvement halves it within the run
    lrs, after = fit(
        compose_config,
        tmp_path / "run",
        ["scheduler=plateau", "model.scheduler.patience=0", *overrides],
    )
    assert len(lrs) == steps
    assert lrs[0] == LR
    assert all(b <= a for a, b in itertools.pairwise(lrs)), f"rises: {lrs}"
    assert after <= lrs[-1]


def test_cosine_without_a_training_length_is_a_config_error(compose_config, tmp_path, capsys):
    cfg = compose_config(
        ["model=asrnn", "debug=fast", "scheduler=cosine", "trainer.max_epochs=-1"],
        run_dir=tmp_path / "run",
    )
    with pytest.raises(SystemExit) as exit_:
        train(cfg)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "trainer.max_steps=-1 and trainer.max_epochs=-1" in err
    assert "set trainer.max_steps or trainer.max_epochs" in err


# ----------------------------------------------------------------------------- warm-up, one-cycle


def warmup_cosine_lr(step: int, total: int, warmup: int, lr: float = LR) -> float:
    """The learning rate of step ``step``: linear warm-up over ``warmup`` steps, then cosine."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    return lr * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / (total - warmup))) / 2


@pytest.mark.parametrize("trainer", ["epochs", "steps", "accumulate"])
def test_warmup_cosine_rises_then_decays_over_the_run(compose_config, tmp_path, trainer):
    overrides, steps = TRAINERS[trainer]
    lrs, after = fit(
        compose_config,
        tmp_path / "run",
        ["scheduler=warmup_cosine", "model.scheduler.warmup_fraction=0.5", *overrides],
    )
    warmup = round(0.5 * steps)  # 2, 2 (of 3) and 1 warm-up steps
    assert len(lrs) == steps
    assert lrs == pytest.approx(
        [warmup_cosine_lr(k, steps, warmup) for k in range(steps)], rel=1e-6
    )
    peak = lrs.index(max(lrs))
    assert peak == warmup and lrs[peak] == pytest.approx(LR)
    assert all(a < b for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert after == pytest.approx(0.0, abs=1e-12)


def test_onecycle_peaks_after_pct_start_of_the_run(compose_config, tmp_path):
    overrides, steps = TRAINERS["epochs"]
    lrs, _ = fit(
        compose_config,
        tmp_path / "run",
        ["scheduler=onecycle", "model.scheduler.pct_start=0.5", *overrides],
    )
    # torch's phases for 4 steps: up to step 0.5 * 4 - 1 = 1, then down to step 3
    low, floor = LR / 25, LR / 25 / 1e4
    assert len(lrs) == steps
    assert lrs == pytest.approx([low, LR, floor + (LR - floor) / 2, floor], rel=1e-6)


def test_warmup_cosine_without_warmup_is_cosine_annealing():
    def run(make):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler, lrs = make(optimizer), []
        for _ in range(11):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return lrs

    cosine = run(lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.1))
    assert run(lambda o: warmup_cosine(o, total_steps=10, warmup_fraction=0, eta_min=0.1)) == cosine
    warm = run(lambda o: warmup_cosine(o, total_steps=10, warmup_fraction=0.3, eta_min=0.1))
    assert warm[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    decay = [0.1 + 0.9 * (1 + math.cos(math.pi * (k - 3) / 7)) / 2 for k in range(4, 11)]
    assert warm[4:] == pytest.approx(decay)


def test_onecycle_peaks_at_each_groups_rate_and_keeps_the_momentum():
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))]},
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.25},
    ]
    optimizer = torch.optim.Adam(groups, lr=1.0, betas=(0.5, 0.999))
    scheduler = one_cycle(optimizer, total_steps=100, pct_start=0.3)
    lrs = []
    for _ in range(100):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        assert [g["betas"] for g in optimizer.param_groups] == [(0.5, 0.999)] * 2
        optimizer.step()
        scheduler.step()
    first = [row[0] for row in lrs]
    assert first.index(max(first)) == 29 and max(first) == pytest.approx(1.0)
    assert lrs[29][1] == pytest.approx(0.25)
    assert lrs[0] == pytest.approx([1.0 / 25, 0.25 / 25])
    assert lrs[-1] == pytest.approx([1.0 / 25e4, 0.25 / 25e4], rel=1e-2)


def test_resuming_with_another_training_length_is_refused(compose_config, tmp_path, capsys):
    """torch's schedulers keep the length they were built with: a run resumed under a
    schedule that spans the run must keep its training length."""
    overrides, _ = TRAINERS["steps"]
    run_dir = tmp_path / "run"
    fit(compose_config, run_dir, ["scheduler=cosine", *overrides])
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["ser"]["schedule_steps"] == 3
    longer = [*overrides, "trainer.max_steps=5"]
    with pytest.raises(SystemExit) as exit_:
        fit(compose_config, run_dir, ["scheduler=cosine", *longer, f"ckpt_path={last}"])
    assert exit_.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert "schedule spans 3 optimiser steps and this run's would span 5" in line


def test_bad_schedule_options_are_config_errors():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match=r"model\.scheduler\.warmup_fraction=1"):
        warmup_cosine(optimizer, total_steps=10, warmup_fraction=1)
    with pytest.raises(ConfigError, match=r"model\.scheduler\.pct_start=1\.5"):
        one_cycle(optimizer, total_steps=10, pct_start=1.5)
