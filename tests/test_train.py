"""train.py end to end on the shared Emo-DB copy (debug preset), resume, DDP, W&B, errors."""

import csv
import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.metrics import f1_score
from strict_json import read_strict_json
from wandb_records import wait_for_run_record

from ser.data.corpora import EmoDB
from ser.models import NETWORKS
from ser.module import NonFiniteLossError
from ser.task import train

REPO = Path(__file__).resolve().parents[1]
RESULT_KEYS = {
    "model", "fold", "test_speakers", "val_speakers", "corpus", "seed", "best_epoch",
    "val_uar_best", "test_uar", "test_wa", "test_f1", "recall", "confusion", "predictions",
    "wall_time_s", "versions", "config_hash",
}  # fmt: skip


def expected_test_utterances(emodb_root: Path, speaker: str) -> dict[str, str]:
    corpus = EmoDB(root=emodb_root, download=False)
    return {u.id: u.label for u in corpus.utterances if u.speaker == speaker}


def check_debug_results(results: dict, model: str, expected: dict[str, str]) -> None:
    """What a ``debug=fast`` run of ``model`` on fold 2 records: its run, fold and speakers,
    one prediction per test utterance of speaker 09 (``expected``: id -> label), and scores
    that agree with those predictions."""
    assert set(results) >= RESULT_KEYS
    assert (results["model"], results["fold"], results["corpus"]) == (model, 2, "emodb")
    assert results["test_speakers"] == ["09"] and results["val_speakers"] == ["10"]
    assert (results["epochs_trained"], results["steps_trained"]) == (2, 6)  # 2 epochs of 3
    predictions = {p["id"]: p for p in results["predictions"]}
    assert len(predictions) == len(results["predictions"]) == len(expected)
    assert {i: p["label"] for i, p in predictions.items()} == expected
    classes = results["confusion"]["classes"]
    assert classes == ["ang", "sad", "hap", "neu"]
    matrix = results["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == len(expected)
    for i, c in enumerate(classes):  # confusion rows true, columns predicted
        assert sum(matrix[i]) == sum(p["label"] == c for p in predictions.values())
        assert sum(row[i] for row in matrix) == sum(p["pred"] == c for p in predictions.values())
    correct = sum(p["pred"] == p["label"] for p in predictions.values())
    assert results["test_wa"] == pytest.approx(correct / len(expected))
    labels = [p["label"] for p in predictions.values()]
    preds = [p["pred"] for p in predictions.values()]
    assert results["test_f1"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert 0.0 <= results["test_uar"] <= 1.0 and 0.0 <= results["val_uar_best"] <= 1.0
    for p in predictions.values():
        assert sum(p["probs"].values()) == pytest.approx(1.0, abs=1e-5)
        assert p["pred"] == max(p["probs"], key=p["probs"].get)


@pytest.mark.parametrize("model", list(NETWORKS))
def test_debug_run_writes_complete_results(compose_config, emodb_root, tmp_path, model):
    run_dir = tmp_path / model
    cfg = compose_config([f"model={model}", "debug=fast", "fold=2"], run_dir=run_dir)
    returned = train(cfg)
    results = json.loads((run_dir / "results.json").read_text())
    expected = expected_test_utterances(emodb_root, "09")
    # results.json and what train returns each hold the run's record
    check_debug_results(results, model, expected)
    check_debug_results(returned, model, expected)
    assert (run_dir / "config.yaml").is_file()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout  # fmt: skip
    if head:  # a git checkout: the run names the commit it ran on
        assert head.startswith(results["versions"]["commit"].removesuffix("+dirty"))
    assert results["environment"]["device_kind"] == "cpu"
    # best_epoch against metrics.csv: tests/test_protocol.py
    checkpoint = torch.load(results["best_checkpoint"], map_location="cpu", weights_only=False)
    assert checkpoint["ser"]["format"] == 2
    classes = ["ang", "sad", "hap", "neu"]
    assert checkpoint["hyper_parameters"]["class_names"] == classes
    data = checkpoint["SERDataModule"]
    assert data["classes"] == classes and data["fold"]["test"] == ["09"]
    assert set(data["normalizer"]) == {"mean", "std"} and data["normalizer"]["std"].shape == (3, 40)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_resume_from_last_checkpoint_continues_the_epoch_count(compose_config, tmp_path):
    first = train(compose_config(["model=asrnn", "debug=fast"], run_dir=tmp_path / "first"))
    assert first["epochs_trained"] == 2
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(
        compose_config(
            ["model=asrnn", "debug=fast", f"ckpt_path={last}", "trainer.max_epochs=3"],
            run_dir=tmp_path / "first",
        )
    )
    assert resumed["epochs_trained"] == 3
    assert resumed["steps_trained"] == first["steps_trained"] + first["steps_trained"] // 2
    assert resumed["resumed_from"] == str(last)


def test_a_fresh_run_clears_checkpoints_it_cannot_resume_from(compose_config, tmp_path):
    """A folder left by another config (checkpoints.json names its hash) and a mid-epoch
    ``hpc_ckpt_*.ckpt`` of Lightning's SLURM requeue: the run starts afresh and keeps
    neither."""
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"another config's checkpoint")
    (run_dir / "checkpoints.json").write_text('{"config_hash": "0123456789abcdef"}')
    (run_dir / "hpc_ckpt_1.ckpt").write_bytes(b"a checkpoint from inside an epoch")
    results = train(compose_config(["model=asrnn", "debug=fast"], run_dir=run_dir))
    assert results["resumed_from"] is None and results["epochs_trained"] == 2
    assert not (run_dir / "hpc_ckpt_1.ckpt").exists()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == results["steps_trained"]


def test_resuming_as_the_readme_says_gives_the_uninterrupted_run(compose_config, tmp_path):
    """README, "Resume": the same command with ckpt_path=<run>/checkpoints/last.ckpt and
    hydra.run.dir=<run>. Epoch 2 validates worse than epochs 0-1 here (a learning rate that
    overshoots), so a resume that forgot the best score would test epoch 2's weights."""
    common = ["model=asrnn", "debug=fast", "model.optimizer.lr=0.05", "logger=csv"]
    whole = train(compose_config([*common, "trainer.max_epochs=4"], run_dir=tmp_path / "whole"))
    train(compose_config([*common, "trainer.max_epochs=2"], run_dir=tmp_path / "part"))
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train(
            compose_config(
                [*common, "trainer.max_epochs=4", f"ckpt_path={last}"], run_dir=tmp_path / "part"
            )
        )
    # Lightning's "Checkpoint directory ... exists and is not empty": by design when resuming
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    same = ("best_epoch", "best_step", "val_uar_best", "test_uar", "epochs_trained", "predictions")
    assert {k: resumed[k] for k in same} == {k: whole[k] for k in same}
    assert resumed["resumed_from"] == str(last)

    def validated(run: str) -> list[tuple[str, str]]:
        with open(tmp_path / run / "csv" / "metrics.csv", newline="") as f:
            return [(r["epoch"], r["val/uar"]) for r in csv.DictReader(f) if r.get("val/uar")]

    assert validated("part") == validated("whole")


def test_a_checkpoint_resumed_in_another_folder_is_refused(compose_config, tmp_path, capsys):
    train(compose_config(["model=asrnn", "debug=fast"], run_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        ["model=asrnn", "debug=fast", f"ckpt_path={last}", "trainer.max_epochs=3"],
        run_dir=tmp_path / "second",
    )
    with pytest.raises(SystemExit) as exit_:
        train(cfg)
    assert exit_.value.code == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line]
    assert f"add hydra.run.dir={tmp_path / 'first'}" in error
    assert not (tmp_path / "second" / "results.json").exists()


def test_last_checkpoint_is_the_last_epoch_even_when_the_best_is_earlier(compose_config, tmp_path):
    # learning rate 0: the weights never change, so validation never improves on epoch 0
    overrides = ["model=asrnn", "debug=fast", "trainer.max_epochs=3", "model.optimizer.lr=0"]
    results = train(compose_config(overrides, run_dir=tmp_path / "run"))
    assert results["best_epoch"] == 0 and results["steps_trained"] == 9
    last = torch.load(
        tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    assert (last["epoch"], last["global_step"]) == (2, 9)


def test_rerun_of_a_finished_run_is_skipped(compose_config, emodb_root, tmp_path):
    cfg = compose_config(["model=asrnn", "debug=fast"], run_dir=tmp_path / "run")
    first = train(cfg)
    stamp = (tmp_path / "run" / "results.json").stat().st_mtime_ns
    again = train(cfg)
    assert (tmp_path / "run" / "results.json").stat().st_mtime_ns == stamp
    # the first run's record, fold 0 of the default config: nothing was trained again (a new
    # run would have measured another wall time and written another file)
    assert (again["model"], again["fold"], again["corpus"]) == ("asrnn", 0, "emodb")
    assert again["test_speakers"] == ["03"] and again["val_speakers"] == ["08"]
    assert (again["epochs_trained"], again["steps_trained"]) == (2, 6)
    assert again["resumed_from"] is None
    assert {p["id"]: p["label"] for p in again["predictions"]} == expected_test_utterances(
        emodb_root, "03"
    )
    assert again["wall_time_s"] == first["wall_time_s"] > 0
    assert again["best_checkpoint"] == first["best_checkpoint"]
    assert Path(again["best_checkpoint"]).parent == tmp_path / "run" / "checkpoints"
    assert again["test_uar"] == first["test_uar"]


def test_a_csv_run_does_not_need_wandb(compose_config, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = compose_config(["model=asrnn", "debug=fast", "logger=csv"], run_dir=tmp_path / "run")
    assert train(cfg)["test_uar"] is not None
    assert not (tmp_path / "run" / "error.json").exists()


def run_cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args, f"paths.root_dir={tmp_path}"],
        cwd=tmp_path,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_wandb_offline_run_is_named_and_grouped(compose_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run_dir = tmp_path / "wandb-run"
    cfg = compose_config(
        ["model=asrnn", "debug=fast", "logger=wandb", "fold=4", "task_name=wbtest"], run_dir=run_dir
    )
    assert cfg.logger.wandb.offline is True
    train(cfg)
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = wait_for_run_record(next(runs[0].glob("*.wandb")))
    assert records["display_name"] == "asrnn-fold4"
    assert records["run_group"] == "wbtest"
    assert records["job_type"] == "asrnn"
    assert {"emodb", "test-11", "fold-4"} <= set(records["tags"])


def test_user_errors_from_the_command_line_are_one_line_and_exit_2(tmp_path, emodb_root):
    # the real entry point: a bad task name (checked before Hydra makes folders) and an
    # option left unset (found while Hydra composes the run); the others: in-process, below
    for args, message in [
        (["data=iemocap"], "missing required option data.root"),
        (["task_name=../.."], "task_name=../..: give a plain name"),
    ]:
        result = run_cli(["debug=fast", *args], tmp_path, SER_EMODB_ROOT=str(emodb_root))
        assert result.returncode == 2, result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]
    assert not list(tmp_path.rglob("results.json"))
    assert [p.name for p in tmp_path.parent.iterdir() if p.name.endswith("-fold0")] == []
    # an unknown option: Hydra's own error, which lists the real options
    result = run_cli(["model=lstm"], tmp_path)
    assert result.returncode != 0 and not list(tmp_path.rglob("results.json"))
    assert "Could not find 'model/lstm'" in result.stderr, result.stderr[-3000:]
    assert "Available options in 'model'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fold=10"], "fold=10 is out of range for emodb: valid folds are 0..9 (0: test 03"),
        (["data=iemocap", "data.root=/nonexistent"], "/nonexistent is not an IEMOCAP_full_release"),
        (["hardware=gpu"], "needs a GPU but none is visible"),
        (["data.classes=[ang]"], "data.classes=['ang']: a classifier needs at least two classes"),
        (["datamodule.batch_size=0"], "datamodule.batch_size=0: give a positive number"),
        (["trainer.max_steps=0"], "trainer.max_steps=0 trains nothing"),
        (
            ["model=acrnn", "model.net.lstm_hidden=0"],
            "model.net.lstm_hidden=0: must be a positive integer (model=acrnn)",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(compose_config, tmp_path, capsys, args, message):
    """What train.py does with its composed config."""
    with pytest.raises(SystemExit) as exit_:
        train(compose_config(["debug=fast", *args]))
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
    assert not list(tmp_path.rglob("results.json"))


def test_manifest_errors(compose_config, tmp_path, emodb_manifest, capsys):
    def error_of(manifest: Path) -> str:
        with pytest.raises(SystemExit) as exit_:
            train(compose_config(["debug=fast", "data=manifest", f"data.manifest={manifest}"]))
        assert exit_.value.code == 2
        return capsys.readouterr().err

    broken = tmp_path / "broken.csv"
    broken.write_text("file,emotion,speaker\na.wav,ang,s1\n")
    assert f"{broken} has no column(s) ['path', 'label']" in error_of(broken)
    missing = emodb_manifest.parent / "missing.csv"
    missing.write_text(emodb_manifest.read_text() + "audio/nowhere.wav,ang,03,\n")
    message = error_of(missing)
    assert "1 audio file(s) do not exist" in message and "nowhere.wav" in message


def test_config_hash_ignores_logging_but_not_training_choices(compose_config):
    from ser.identity import config_hash

    base = config_hash(compose_config(["model=asrnn"]))
    assert config_hash(compose_config(["model=asrnn", "logger=wandb"])) == base
    assert config_hash(compose_config(["model=asrnn", "datamodule.num_workers=4"])) == base
    assert config_hash(compose_config(["model=asrnn", "callbacks=early_stopping"])) != base
    assert config_hash(compose_config(["model=asrnn", "fold=3"])) != base
    assert config_hash(compose_config(["model=asrnn", "model.net.window=12"])) != base


def test_an_option_at_its_neutral_value_keeps_the_hash_of_configs_without_it(
    compose_config, monkeypatch
):
    from omegaconf import open_dict

    from ser import identity
    from ser.identity import config_hash

    without = compose_config(["model=asrnn"])
    with open_dict(without):
        del without.model["mse_weight"]  # as if the option did not exist yet
    with_option = compose_config(["model=asrnn"])
    # without the declaration the key counts, whatever its value
    assert config_hash(with_option) != config_hash(without)
    monkeypatch.setitem(identity.HASH_NEUTRAL, "model.mse_weight", 0.0)
    assert config_hash(with_option) == config_hash(without)
    used = compose_config(["model=asrnn", "model.mse_weight=0.5"])
    assert config_hash(used) != config_hash(without)


def test_absent_class_recall_is_null_and_results_are_strict_json(compose_config, tmp_path):
    # Emo-DB speaker 08 (fold 1's test speaker) has no disgust utterance
    run_dir = tmp_path / "seven"
    train(
        compose_config(
            ["model=asrnn", "debug=fast", "data=emodb_7class", "fold=1"], run_dir=run_dir
        )
    )

    results = read_strict_json(run_dir / "results.json")
    assert results["recall"]["dis"] is None
    assert all(isinstance(v, float) for c, v in results["recall"].items() if c != "dis")


def test_resuming_a_checkpoint_of_another_fold_or_model_is_refused(
    compose_config, tmp_path, capsys
):
    train(compose_config(["model=asrnn", "debug=fast", "fold=0"], run_dir=tmp_path / "fold0"))
    last = tmp_path / "fold0" / "checkpoints" / "last.ckpt"
    finished = (tmp_path / "fold0" / "results.json").stat().st_mtime_ns
    for attempt, (overrides, message) in enumerate(
        [
            (["model=asrnn", "fold=1"], "trained on emodb fold 0"),
            (
                ["model=acrnn", "fold=0"],
                "the checkpoint holds model 'asrnn' (ser.models.asrnn.ASRNN), not this run's "
                "'acrnn' (ser.models.acrnn.ACRNN)",
            ),
            (
                ["model=asrnn", "fold=0", "model.net.window=12"],
                "other model.net settings ['window']",
            ),
        ]
    ):
        # in the checkpoint's own folder, where a resume may continue it
        cfg = compose_config(
            [*overrides, "debug=fast", f"ckpt_path={last}", "trainer.max_epochs=3"],
            run_dir=tmp_path / "fold0",
        )
        with pytest.raises(SystemExit) as exit_:
            train(cfg)
        assert exit_.value.code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line]
        assert len(errors) == 1 and message in errors[0], (attempt, errors)
        assert (tmp_path / "fold0" / "results.json").stat().st_mtime_ns == finished


def write_nan_audio(path: Path) -> None:
    """Rewrite ``path`` as float samples with a run of NaN (``soundfile`` keeps them)."""
    wave, rate = sf.read(path, dtype="float32")
    wave[1000:1100] = np.nan
    sf.write(path, wave, rate, subtype="FLOAT")


def test_nan_audio_fails_the_run_naming_the_file(compose_config, tmp_path, emodb_manifest, capsys):
    bad = sorted((emodb_manifest.parent / "audio").glob("09*.wav"))[0]  # a training file
    write_nan_audio(bad)
    with pytest.raises(SystemExit) as exit_:
        train(compose_config(["data=manifest", f"data.manifest={emodb_manifest}", "debug=fast"]))
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0] and "100 non-finite sample(s)" in errors[0]
    assert "datamodule.skip_bad_audio=true" in errors[0]
    assert not list(tmp_path.rglob("results.json"))


def test_skipped_audio_is_recorded_in_the_results(compose_config, tmp_path, emodb_manifest):
    audio = emodb_manifest.parent / "audio"
    test_files = sorted(audio.glob("03*.wav"))  # speaker 03 is fold 0's test speaker
    write_nan_audio(test_files[0])
    write_nan_audio(sorted(audio.glob("09*.wav"))[0])
    run_dir = tmp_path / "skip"
    cfg = compose_config(
        ["model=asrnn", "debug=fast", "data=manifest", f"data.manifest={emodb_manifest}",
         "datamodule.skip_bad_audio=true"],
        run_dir=run_dir,
    )  # fmt: skip
    train(cfg)
    results = read_strict_json(run_dir / "results.json")
    dropped = {d["path"]: d for d in results["dropped_files"]}
    assert set(dropped) == {str(test_files[0]), str(sorted(audio.glob("09*.wav"))[0])}
    assert dropped[str(test_files[0])]["split"] == "test"
    assert dropped[str(test_files[0])]["speaker"] == "03"
    assert all("non-finite sample(s)" in d["reason"] for d in dropped.values())
    assert results["n_test_utterances"] == len(test_files) - 1 == len(results["predictions"])
    assert test_files[0].stem not in {Path(p["id"]).name for p in results["predictions"]}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["ckpt_path=/nowhere/last.ckpt"], "ckpt_path=/nowhere/last.ckpt does not exist"),
        (
            ["+trainer.limit_test_batches=1", "datamodule.eval_batch_size=8"],
            "only 8 of 39 test utterances were evaluated",
        ),
    ],
)
def test_runs_that_cannot_give_a_fold_result_stop(
    compose_config, tmp_path, capsys, overrides, message
):
    with pytest.raises(SystemExit) as exit_:
        train(compose_config(["model=asrnn", "debug=fast", *overrides], run_dir=tmp_path / "run"))
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.json").exists()


def test_ddp_inside_a_multirun_is_refused(tmp_path, emodb_root):
    command = ["-m", "debug=fast", "hardware=ddp_sim", "fold=0,1", f"hydra.sweep.dir={tmp_path}/m"]
    result = run_cli(command, tmp_path, SER_EMODB_ROOT=str(emodb_root))
    assert result.returncode == 2
    assert "inside a multirun: DDP would relaunch the whole sweep" in result.stderr


def test_multinode_takes_the_node_count_from_slurm(compose_config, monkeypatch):
    monkeypatch.setenv("SLURM_NNODES", "3")
    cfg = compose_config(["hardware=multinode"])
    assert cfg.trainer.num_nodes == 3 and isinstance(cfg.trainer.num_nodes, int)
    assert cfg.trainer.strategy == "ddp"


def test_a_diverging_learning_rate_stops_the_run_at_its_first_non_finite_loss(
    compose_config, tmp_path
):
    run_dir = tmp_path / "diverge"
    overrides = ["debug=fast", "model=asrnn", "optimizer=adamw", "model.optimizer.lr=1e6"]
    cfg = compose_config([*overrides, "trainer.max_epochs=20"], run_dir=run_dir)
    with pytest.raises(NonFiniteLossError) as error:
        train(cfg)
    message = str(error.value)
    step = int(re.search(r"at step (\d+) ", message).group(1))
    # debug=fast logs the loss every step: the run stopped at the first non-finite one
    losses = {
        int(row["step"]): float(row["train/loss"])
        for row in csv.DictReader((run_dir / "csv" / "metrics.csv").open())
        if row["train/loss"]
    }
    assert sorted(losses) == list(range(step)) and all(map(math.isfinite, losses.values()))
    last = re.search(r"last finite loss: (\S+),", message).group(1)
    assert float(last) == pytest.approx(losses[step - 1], rel=1e-5)
    assert "learning rate 1e+06" in message
    assert not (run_dir / "results.json").exists()


@pytest.mark.parametrize(
    ("cross_eval", "message"),
    [
        ("+cross_eval=emovo", "+cross_eval=emovo: give a list of corpora in brackets"),
        ("+cross_eval=[timit]", "+cross_eval: unknown corpus 'timit': valid options are"),
        ("+cross_eval=[emovo,emodb]", "names emodb, the corpus this run trains on"),
        ("+cross_eval=[emodb_7class]", "names emodb_7class, the corpus this run trains on"),
    ],
)
def test_cross_eval_is_checked_before_training(
    compose_config, tmp_path, capsys, cross_eval, message
):
    with pytest.raises(SystemExit) as exit_:
        train(compose_config(["model=asrnn", "debug=fast", cross_eval]))
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_slurm_job_on_a_node_without_its_hardware_records_the_error(
    compose_config, tmp_path, monkeypatch, capsys
):
    """srun python train.py hardware=ddp on a node with fewer GPUs: one error line, and the
    same error in the run folder's error.json."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK"):
        monkeypatch.delenv(variable, raising=False)
    run_dir = tmp_path / "job"
    with pytest.raises(SystemExit) as exit_:
        train(compose_config(["model=asrnn", "debug=fast", "hardware=gpu"], run_dir=run_dir))
    assert exit_.value.code == 2
    (line,) = [e for e in capsys.readouterr().err.splitlines() if e.startswith("error:")]
    record = json.loads((run_dir / "error.json").read_text())
    assert record["error"] == "ConfigError" and line == f"error: {record['message']}"
    assert "needs a GPU but none is visible" in record["message"]
