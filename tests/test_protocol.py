"""The evaluation protocol's guarantees, end to end on the shared Emo-DB copy.

- The tested checkpoint is the one with the best ``val/uar`` (read from ``metrics.csv``),
  not the last one.
- ``test_uar``, ``test_wa``, ``test_f1``, ``recall`` and ``confusion`` equal scikit-learn's
  values computed from the run's own ``predictions``.
- A training process stopped by SIGTERM (``kill``, ``scancel``) in the middle of an epoch
  exits with code 143, writes no results, and resumes from ``last.ckpt`` to the result of an
  uninterrupted run. (``tests/test_sweep.py`` SIGKILLs a sweep and reruns it.)
- A 2-process DDP run scores exactly what one process scores with the same checkpoint.

The expected values come from outside the code under test: scikit-learn, ``metrics.csv``
and a recomputation of the test step written out here (:func:`independent_predictions`):
features of the wav files, z-scored with statistics computed here with numpy from the
training utterances, cut into first and last 300 frames and padded as SEED.md says, run
through the checkpoint's network and combined by element-wise max. It shares no segmenting,
normalisation, padding or combination code with the data module, the test step or
:class:`ser.inference.Predictor`.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from ser.data.corpora import EmoDB
from ser.data.features import LogMel3D
from ser.module import SERModule
from ser.task import train

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


class WipeAtLastEpoch(L.Callback):
    """At the start of the last epoch, zero every weight and the learning rate.

    That epoch's model gives every class the same probability (so it predicts one class,
    UAR 1/C), which makes the last epoch worse than the best one.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == trainer.max_epochs - 1:
            with torch.no_grad():
                for parameter in pl_module.net.parameters():
                    parameter.zero_()
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 0.0


class KillAt(L.Callback):
    """Sends its own process ``signal_name`` at batch ``batch`` of epoch ``epoch``: an
    interrupted run."""

    def __init__(self, epoch: int, batch: int, signal_name: str = "SIGKILL") -> None:
        self.epoch, self.batch, self.signal = epoch, batch, signal.Signals[signal_name]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signal)


def logged(run_dir: Path, metric: str, by: str) -> dict[int, float]:
    """``{epoch or step: value}`` of ``metric`` from the run's ``csv/metrics.csv``."""
    with (run_dir / "csv" / "metrics.csv").open() as f:
        return {int(r[by]): float(r[metric]) for r in csv.DictReader(f) if r[metric]}


def val_uar_per_epoch(run_dir: Path) -> dict[int, float]:
    """``{epoch: val/uar}``."""
    return logged(run_dir, "val/uar", "epoch")


def training_losses(run_dir: Path) -> dict[int, float]:
    """``{step: train/loss}`` (``debug=fast`` logs every step)."""
    return logged(run_dir, "train/loss", "step")


# ----------------------------------------------------------------------------- the oracle
# The test step recomputed from SEED.md, with numpy: nothing below calls the data module, the
# segment policies, the normaliser, the test step or ser.inference. (On the shared Emo-DB copy
# every file is 2.0 s, 198 frames: each utterance is one segment padded to 300 frames, so
# these runs check the statistics, the padding and the network's input; cutting and
# combining several segments are checked in tests/data/test_segments.py and test_metrics.py.)

#: Emo-DB's 4 classes in the network's output order (conf/data/emodb.yaml)
CLASSES = ["ang", "sad", "hap", "neu"]
#: the training speakers of folds 0 and 1 (test 03 / val 08, test 08 / val 03)
TRAIN_SPEAKERS = ["09", "10", "11", "12", "13", "14", "15", "16"]
#: segment length: 3 s of 10 ms log-mel frames
SEGMENT = 300
#: hop of the minority class's sliding training windows: 1 s
HOP = 100


def first_and_last(frames: int) -> list[int]:
    """Segment starts of an utterance of ``frames`` frames: one (padded) segment when it is
    at most 300 frames long, else the first and the last 300 frames."""
    return [0] if frames <= SEGMENT else [0, frames - SEGMENT]


def sliding(frames: int) -> list[int]:
    """Starts of every 300-frame window with a hop of 100, plus one ending at the last frame."""
    if frames <= SEGMENT:
        return [0]
    starts = list(range(0, frames - SEGMENT + 1, HOP))
    return starts if starts[-1] == frames - SEGMENT else [*starts, frames - SEGMENT]


@pytest.fixture(scope="module")
def emodb_features(emodb_root: Path) -> dict[str, np.ndarray]:
    """``{id: (3, T, 40)}`` log-mel features of every 4-class Emo-DB file, computed from the
    wav file (soundfile, torchaudio's resampler to 16 kHz), not read from the feature cache."""
    extract = LogMel3D()  # conf/features/logmel.yaml: the settings the runs use
    features = {}
    for utterance in EmoDB(root=emodb_root, download=False).utterances:
        wave, rate = sf.read(emodb_root / "wav" / f"{utterance.id}.wav", dtype="float32")
        wave = torchaudio.transforms.Resample(rate, 16000)(torch.from_numpy(wave))
        features[utterance.id] = extract(wave).numpy()
    return features


def training_statistics(
    emodb_root: Path, features: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std ``(3, 40)`` of the training segments of folds 0 and 1, per channel and
    mel band: first and last 300 frames of each utterance, every 300-frame window (hop 100)
    of the class with the fewest training utterances; a frame counts as often as segments
    cover it, padding never."""
    train = [
        u for u in EmoDB(root=emodb_root, download=False).utterances if u.speaker in TRAIN_SPEAKERS
    ]
    counts = {c: sum(u.label == c for u in train) for c in CLASSES}
    minority = min(counts, key=counts.get)
    assert list(counts.values()).count(counts[minority]) == 1  # no tie to break
    frames, weights = [], []
    for u in train:
        x = features[u.id]
        cover = np.zeros(x.shape[1])
        for start in (sliding if u.label == minority else first_and_last)(x.shape[1]):
            cover[start : start + SEGMENT] += 1
        frames.append(x.astype(np.float64))
        weights.append(cover)
    x, w = np.concatenate(frames, axis=1), np.concatenate(weights)  # (3, N, 40), (N,)
    mean = (x * w[None, :, None]).sum(axis=1) / w.sum()
    var = ((x - mean[:, None, :]) ** 2 * w[None, :, None]).sum(axis=1) / w.sum()
    return mean, np.maximum(np.sqrt(var), 1e-5)


def independent_predictions(
    checkpoint: str | Path, emodb_root: Path, features: dict[str, np.ndarray], ids: list[str]
) -> dict[str, dict]:
    """``{id: {"pred", "probs"}}`` of Emo-DB utterances by the checkpoint's network: each
    utterance z-scored with :func:`training_statistics`, cut by :func:`first_and_last`, its
    short segment padded with zeros after the z-score (``datamodule.padding: mean``), and the
    segments' probabilities combined by element-wise max, renormalised, argmax."""
    stored = torch.load(checkpoint, map_location="cpu", weights_only=False)["SERDataModule"]
    # what the recomputation assumes of the run
    assert stored["features"] == LogMel3D().record()
    assert stored["padding"] == "mean" and stored["segment_frames"] == SEGMENT
    mean, std = training_statistics(emodb_root, features)
    # the run's statistics are those of its training segments (float32 in the checkpoint)
    np.testing.assert_allclose(stored["normalizer"]["mean"].numpy(), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stored["normalizer"]["std"].numpy(), std, rtol=1e-6, atol=1e-6)
    module = SERModule.load_from_checkpoint(checkpoint)
    assert module.class_names == CLASSES
    net = module.net.eval()
    out = {}
    for i in ids:
        x = (features[i] - mean[:, None, :]) / std[:, None, :]  # (3, T, 40)
        segments = np.zeros((2, 3, SEGMENT, 40), dtype=np.float32)
        starts = first_and_last(x.shape[1])
        for k, start in enumerate(starts):
            window = x[:, start : start + SEGMENT]
            segments[k, :, : window.shape[1]] = window
        with torch.no_grad():
            probs = net(torch.from_numpy(segments[: len(starts)])).exp().double().numpy()
        combined = probs.max(axis=0)
        combined /= combined.sum()
        out[i] = {
            "pred": CLASSES[int(combined.argmax())],
            "probs": dict(zip(CLASSES, combined, strict=True)),
        }
    return out


def sklearn_uar(labels: list[str], preds: list[str]) -> float:
    """Mean recall over the classes present in ``labels`` (scikit-learn)."""
    return recall_score(labels, preds, labels=sorted(set(labels)), average="macro")


def speaker_ids(emodb_root: Path, speaker: str) -> tuple[list[str], list[str]]:
    """Ids and labels of a speaker's 4-class Emo-DB utterances."""
    mine = [u for u in EmoDB(root=emodb_root, download=False).utterances if u.speaker == speaker]
    return [u.id for u in mine], [u.label for u in mine]


def test_the_tested_checkpoint_is_the_best_on_validation_not_the_last(
    compose_config, tmp_path, emodb_root, emodb_features
):
    run_dir = tmp_path / "run"
    overrides = ["model=asrnn", "debug=fast", "trainer.max_epochs=4", "model.optimizer.lr=0.003"]
    wipe = f"+callbacks.wipe._target_={__name__}.WipeAtLastEpoch"
    results = train(compose_config([*overrides, wipe], run_dir=run_dir))

    val = val_uar_per_epoch(run_dir)
    assert sorted(val) == [0, 1, 2, 3]
    assert val[3] < max(val.values())  # the wiped last epoch is worse than the best
    best = min(e for e, uar in val.items() if uar == max(val.values()))  # first of any tie
    assert results["best_epoch"] == best
    assert results["val_uar_best"] == pytest.approx(val[best], abs=1e-6)

    ids = [p["id"] for p in results["predictions"]]
    labels = [p["label"] for p in results["predictions"]]
    assert results["test_speakers"] == ["03"] and results["val_speakers"] == ["08"]
    from_best = independent_predictions(results["best_checkpoint"], emodb_root, emodb_features, ids)
    last = run_dir / "checkpoints" / "last.ckpt"
    from_last = independent_predictions(last, emodb_root, emodb_features, ids)
    for p in results["predictions"]:
        assert p["pred"] == from_best[p["id"]]["pred"]
        assert p["probs"] == pytest.approx(from_best[p["id"]]["probs"], abs=1e-5)
    assert all(set(p["probs"].values()) == {0.25} for p in from_last.values())
    best_uar = sklearn_uar(labels, [from_best[i]["pred"] for i in ids])
    last_uar = sklearn_uar(labels, [from_last[i]["pred"] for i in ids])
    assert results["test_uar"] == pytest.approx(best_uar, abs=1e-6)
    assert last_uar == pytest.approx(0.25) and results["test_uar"] != pytest.approx(last_uar)


def test_uar_wa_recall_and_confusion_equal_scikit_learn(compose_config, tmp_path):
    # 7 classes, fold 1: the test speaker (08) has no disgust utterance, so UAR averages
    # over the 6 classes present
    run_dir = tmp_path / "seven"
    overrides = ["model=asrnn", "debug=fast", "data=emodb_7class", "fold=1", "trainer.max_epochs=3"]
    results = train(compose_config([*overrides, "model.optimizer.lr=0.003"], run_dir=run_dir))
    classes = results["confusion"]["classes"]
    labels = [p["label"] for p in results["predictions"]]
    preds = [p["pred"] for p in results["predictions"]]
    present = [c for c in classes if c in labels]
    assert "dis" in classes and "dis" not in present

    assert results["test_uar"] == pytest.approx(sklearn_uar(labels, preds), abs=1e-6)
    assert results["test_wa"] == pytest.approx(accuracy_score(labels, preds), abs=1e-6)
    # macro-F1 over the classes true or predicted (sklearn's default labels)
    assert results["test_f1"] == pytest.approx(f1_score(labels, preds, average="macro"), abs=1e-6)
    recalls = recall_score(labels, preds, labels=present, average=None)
    assert results["recall"] == pytest.approx(
        {c: None if c not in present else recalls[present.index(c)] for c in classes}, abs=1e-6
    )
    matrix = confusion_matrix(labels, preds, labels=classes)
    assert results["confusion"]["matrix"] == matrix.tolist()
    rows = [i for i, c in enumerate(classes) if c in present]
    from_matrix = sum(matrix[i, i] / matrix[i].sum() for i in rows) / len(rows)
    assert results["test_uar"] == pytest.approx(from_matrix, abs=1e-6)


def run_train(args: list[str], cwd: Path, emodb_root: Path) -> subprocess.CompletedProcess:
    """``train.py`` in a fresh process; the test module is importable there (callbacks)."""
    env = os.environ | {
        "SER_EMODB_ROOT": str(emodb_root),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_run_killed_mid_fit_resumes_to_the_uninterrupted_result(
    tmp_path, emodb_root, emodb_cache_dir
):
    common = [
        # a step budget, as the documented runs have, ending inside epoch 4
        "model=asrnn", "debug=fast", "trainer.max_epochs=-1", "trainer.max_steps=14",
        "model.optimizer.lr=0.003",
        "trainer.deterministic=true", "print_config=false", f"paths.root_dir={tmp_path}",
        f"paths.cache_dir={emodb_cache_dir}",
    ]  # fmt: skip
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = run_train([*common, f"hydra.run.dir={reference_dir}"], tmp_path, emodb_root)
    assert reference.returncode == 0, reference.stderr[-3000:]

    kill = [f"+callbacks.kill._target_={KillAt.__module__}.KillAt", "+callbacks.kill.epoch=3",
            "+callbacks.kill.batch=1", "+callbacks.kill.signal_name=SIGTERM"]  # fmt: skip
    killed = run_train([*common, *kill, f"hydra.run.dir={killed_dir}"], tmp_path, emodb_root)
    # Lightning alone would exit 0 here, as if the run had finished
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr[-3000:]
    last = killed_dir / "checkpoints" / "last.ckpt"
    assert (
        f"stopped by SIGTERM before it finished (no results.json); resume it with the same "
        f"command plus ckpt_path={last} hydra.run.dir={killed_dir}" in killed.stdout + killed.stderr
    )
    assert not (killed_dir / "results.json").exists()
    assert not (killed_dir / "error.json").exists()
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["epoch"] == 2 and state["global_step"] == 9  # after 3 epochs of 3 batches

    resumed = run_train(
        [*common, f"ckpt_path={last}", f"hydra.run.dir={killed_dir}"], tmp_path, emodb_root
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((reference_dir / "results.json").read_text())
    got = json.loads((killed_dir / "results.json").read_text())
    for key in ("epochs_trained", "steps_trained", "best_epoch", "best_step"):
        assert got[key] == expected[key], key
    for key in ("val_uar_best", "test_uar", "test_wa", "test_f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    probs = {p["id"]: p["probs"] for p in expected["predictions"]}
    for p in got["predictions"]:
        assert p["probs"] == pytest.approx(probs[p["id"]], abs=1e-5)
    # the same batches (training losses) and validation as the uninterrupted run, every
    # epoch once: metrics.csv keeps the epochs before the kill and drops the one cut short
    # (ser.loggers), and the same final weights and optimiser state
    with (killed_dir / "csv" / "metrics.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["train/loss"]]
    assert steps == list(range(14))
    assert val_uar_per_epoch(killed_dir) == pytest.approx(val_uar_per_epoch(reference_dir))
    assert sorted(val_uar_per_epoch(killed_dir)) == [0, 1, 2, 3]
    assert training_losses(killed_dir) == pytest.approx(training_losses(reference_dir))
    final, final_reference = (
        torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        for d in (killed_dir, reference_dir)
    )
    assert final["global_step"] == final_reference["global_step"] == 14
    for name, weights in final_reference["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], weights, rtol=0, atol=1e-6)
    moments = final["optimizer_states"][0]["state"]
    for index, state in final_reference["optimizer_states"][0]["state"].items():
        torch.testing.assert_close(moments[index]["exp_avg"], state["exp_avg"], rtol=0, atol=1e-6)


def test_ddp_scores_exactly_what_one_process_scores(
    tmp_path, emodb_root, emodb_cache_dir, emodb_features
):
    run_dir = tmp_path / "ddp"
    args = ["model=asrnn", "debug=fast", "fold=1", "hardware=ddp_sim", "model.optimizer.lr=0.003",
            "trainer.max_epochs=3", f"paths.root_dir={tmp_path}",
            f"paths.cache_dir={emodb_cache_dir}", f"hydra.run.dir={run_dir}"]  # fmt: skip
    ddp = run_train(args, tmp_path, emodb_root)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["environment"]["world_size"] == 2

    # test: every utterance of speaker 08 exactly once, scored as one process scores it
    test_ids, test_labels = speaker_ids(emodb_root, "08")
    assert sorted(p["id"] for p in results["predictions"]) == sorted(test_ids)
    one = independent_predictions(results["best_checkpoint"], emodb_root, emodb_features, test_ids)
    for p in results["predictions"]:
        assert p["pred"] == one[p["id"]]["pred"]
        assert p["probs"] == pytest.approx(one[p["id"]]["probs"], abs=1e-5)
    one_uar = sklearn_uar(test_labels, [one[i]["pred"] for i in test_ids])
    assert results["test_uar"] == pytest.approx(one_uar, abs=1e-6)

    # validation: the synchronised val/uar of the best epoch is the whole split's
    assert results["val_speakers"] == ["03"]  # 08's partner
    val_ids, val_labels = speaker_ids(emodb_root, "03")
    one_val = independent_predictions(
        results["best_checkpoint"], emodb_root, emodb_features, val_ids
    )
    val_uar = sklearn_uar(val_labels, [one_val[i]["pred"] for i in val_ids])
    assert results["val_uar_best"] == pytest.approx(val_uar, abs=1e-6)
