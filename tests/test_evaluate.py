"""Cross-corpus evaluation of a trained checkpoint (ser.evaluate): same path as the test step,
metrics, class matching, target normalisation, feature cache, CLI."""

import copy
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra_compose import compose_tool
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score
from strict_json import read_strict_json

from ser.data.audio import load_audio
from ser.data.corpora import EMOVO, EmoDB
from ser.data.normalization import Normalizer
from ser.data.segments import FirstLast
from ser.errors import AudioError, ConfigError, CorpusError
from ser.evaluate import command, evaluate, summary
from ser.inference import Predictor
from ser.io import write_json_atomic
from ser.task import train

#: EMOVO's emotion codes of the default 4 classes, and of the 3 the 4-class checkpoint lacks
EMOVO_FOUR = {"rab": "ang", "tri": "sad", "gio": "hap", "neu": "neu"}
EMOVO_OTHER = {"dis": "dis", "pau": "fea", "sor": "sur"}


def emovo_files(root: Path, codes) -> list[Path]:
    """EMOVO wav files whose emotion code is in ``codes``, read from the folder itself."""
    return sorted(p for p in root.glob("*/*.wav") if p.stem.split("-")[0] in codes)


@pytest.fixture(scope="module")
def trained(emodb_root, emodb_cache_dir, tmp_path_factory):
    """A debug ASRNN trained on Emo-DB fold 0 (test speaker 03): (results, checkpoint)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from ser.config import CONFIG_DIR

    tmp = tmp_path_factory.mktemp("evaluate-train")
    run_dir = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_EMODB_ROOT", str(emodb_root))
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = compose(
                "config",
                overrides=[
                    f"paths.root_dir={tmp}",
                    f"paths.cache_dir={emodb_cache_dir}",
                    f"paths.output_dir={run_dir}",
                    f"hydra.run.dir={run_dir}",
                    "model=asrnn",
                    "debug=fast",
                    "trainer.max_epochs=3",
                    "model.optimizer.lr=0.003",
                ],
                return_hydra_config=True,
            )
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            del cfg.hydra
        results = train(cfg)
        GlobalHydra.instance().clear()
    return results, Path(results["best_checkpoint"])


@pytest.fixture(scope="module")
def predictor(trained):
    return Predictor.from_checkpoint(trained[1], device="cpu")


@pytest.fixture(scope="module")
def emovo_cache(tmp_path_factory):
    """A feature cache for EMOVO, filled by the first evaluation and reused by the others."""
    return tmp_path_factory.mktemp("emovo-cache")


@pytest.fixture(scope="module")
def emovo_result(predictor, emovo_root, emovo_cache):
    """The checkpoint scored on the whole 4-class EMOVO copy (fills ``emovo_cache``)."""
    return evaluate(predictor, EMOVO(root=emovo_root), cache_dir=emovo_cache, progress=False)


def test_a_fold_of_the_training_corpus_reproduces_the_test_step(
    trained, predictor, emodb_root, emodb_cache_dir
):
    results, checkpoint = trained
    corpus = EmoDB(root=emodb_root, download=False)
    result = evaluate(
        predictor, corpus, fold=results["fold"], cache_dir=emodb_cache_dir, progress=False
    )
    assert result["checkpoint"] == str(checkpoint)
    assert result["corpus"] == "emodb" and result["norm"] == "checkpoint"
    assert result["speakers"] == results["test_speakers"] and result["dropped"] == 0
    assert result["n_utterances"] == results["n_test_utterances"]
    expected = results["predictions"]
    assert [p["id"] for p in result["predictions"]] == [p["id"] for p in expected]
    for got, want in zip(result["predictions"], expected, strict=True):
        assert got["label"] == want["label"] and got["pred"] == want["pred"]
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-5)
    assert result["uar"] == pytest.approx(results["test_uar"], abs=1e-6)
    assert result["wa"] == pytest.approx(results["test_wa"], abs=1e-6)
    assert result["f1"] == pytest.approx(results["test_f1"], abs=1e-6)
    assert result["recall"] == pytest.approx(results["recall"], abs=1e-6)
    assert result["confusion"] == results["confusion"]
    # features computed in memory (no cache) give the same scores
    uncached = evaluate(predictor, corpus, fold=results["fold"], progress=False)
    assert uncached["uar"] == result["uar"]
    assert uncached["predictions"] == result["predictions"]


def test_emovo_scores_agree_with_sklearn_on_its_predictions(emovo_result, emovo_root, tmp_path):
    result = emovo_result
    files = emovo_files(emovo_root, EMOVO_FOUR)
    assert result["n_utterances"] == len(files) == len(result["predictions"]) == 336
    assert sorted(p["id"] for p in result["predictions"]) == sorted(f.stem for f in files)
    truth = {f.stem: EMOVO_FOUR[f.stem.split("-")[0]] for f in files}
    assert all(p["label"] == truth[p["id"]] for p in result["predictions"])
    assert result["corpus"] == "emovo" and result["norm"] == "checkpoint"
    assert result["fold"] is None and result["dropped"] == 0
    classes = result["classes"]
    y_true = [p["label"] for p in result["predictions"]]
    y_pred = [p["pred"] for p in result["predictions"]]
    assert all(p["pred"] == max(p["probs"], key=p["probs"].get) for p in result["predictions"])
    assert result["uar"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert result["wa"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    recalls = recall_score(y_true, y_pred, labels=classes, average=None)
    assert [result["recall"][c] for c in classes] == pytest.approx(list(recalls))
    assert result["confusion"]["classes"] == classes
    assert (
        result["confusion"]["matrix"] == confusion_matrix(y_true, y_pred, labels=classes).tolist()
    )
    assert result["support"] == dict(Counter(y_true))
    out = tmp_path / "emovo.json"
    write_json_atomic(out, result)
    assert read_strict_json(out) == result


def test_repeated_evaluation_reads_cached_features(predictor, emovo_root, emovo_cache,
                                                   emovo_result, monkeypatch):  # fmt: skip
    def no_audio(*args, **kwargs):
        raise AssertionError("features were recomputed instead of read from the cache")

    monkeypatch.setattr("ser.data.source.load_audio", no_audio)
    again = evaluate(predictor, EMOVO(root=emovo_root), cache_dir=emovo_cache, progress=False)
    assert again == emovo_result


def test_a_class_the_target_lacks_has_null_recall(predictor, emovo_root, emovo_cache):
    corpus = EMOVO(root=emovo_root, classes=["ang", "sad", "neu"])
    result = evaluate(predictor, corpus, cache_dir=emovo_cache, progress=False)
    files = emovo_files(emovo_root, {"rab", "tri", "neu"})
    assert result["n_utterances"] == len(files) == 252
    assert result["recall"]["hap"] is None and result["support"]["hap"] == 0
    present = [result["recall"][c] for c in ("ang", "sad", "neu")]
    assert all(r is not None for r in present)
    assert result["uar"] == pytest.approx(np.mean(present))  # over the classes present
    y_true = [p["label"] for p in result["predictions"]]
    y_pred = [p["pred"] for p in result["predictions"]]
    assert result["uar"] == pytest.approx(
        recall_score(y_true, y_pred, labels=["ang", "sad", "neu"], average="macro")
    )
    # macro-F1 over the classes true or predicted: hap counts (F1 0) only if predicted
    assert result["f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    # the confusion matrix keeps the checkpoint's four classes: predicted hap is an error
    matrix = result["confusion"]["matrix"]
    assert len(matrix) == 4 and sum(matrix[result["classes"].index("hap")]) == 0
    assert sum(map(sum, matrix)) == 252
    assert ["hap", "0", "-"] in [line.split() for line in summary(result).splitlines()]


def test_target_normalisation_uses_the_target_utterances_only(predictor, emovo_root,
                                                              emovo_cache):  # fmt: skip
    fed = []  # what the network is fed, segment by segment in utterance order

    def scored(run):
        fed.clear()
        handle = predictor.net.register_forward_pre_hook(lambda module, args: fed.append(args[0]))
        try:
            result = run()
        finally:
            handle.remove()
        return result, torch.cat(fed)

    corpus = EMOVO(root=emovo_root)
    target, target_x = scored(
        lambda: evaluate(
            predictor, corpus, fold=0, norm="target", cache_dir=emovo_cache, progress=False
        )
    )
    checkpoint, checkpoint_x = scored(
        lambda: evaluate(predictor, corpus, fold=0, cache_dir=emovo_cache, progress=False)
    )
    assert target["norm"] == "target" and checkpoint["norm"] == "checkpoint"
    assert "norm=target" in summary(target) and "norm=checkpoint" in summary(checkpoint)
    # fold 0 scores speaker f1 only, and the statistics come from f1's utterances only:
    # weighted by the first+last 300-frame segments the network is fed, computed here apart
    files = [f for f in emovo_files(emovo_root, EMOVO_FOUR) if f.parent.name == "f1"]
    assert [p["id"] for p in target["predictions"]] == [f.stem for f in files]
    assert isinstance(predictor.segments, FirstLast) and predictor.segment_frames == 300
    extract = predictor.features
    total, weighted, weighted_sq = 0.0, 0.0, 0.0
    feats = []
    for f in files:
        wave = load_audio(f, sample_rate=extract.sample_rate, min_samples=extract.win_length)
        x = extract(wave).double().numpy()  # (3, T, 40)
        frames = x.shape[1]
        w = np.zeros(frames)
        if frames <= 300:
            w[:] = 1
        else:
            w[:300] += 1
            w[-300:] += 1
        feats.append((x, w))
        total += w.sum()
        weighted += np.einsum("t,ctf->cf", w, x)
    mean = weighted / total
    for x, w in feats:
        weighted_sq += np.einsum("t,ctf->cf", w, (x - mean[:, None]) ** 2)
    std = np.sqrt(weighted_sq / total)
    assert np.abs(mean - predictor.normalizer.mean.numpy()).mean() > 0.1  # not Emo-DB's
    adapted = copy.copy(predictor)
    adapted.normalizer = Normalizer(
        mean=torch.from_numpy(mean).float(), std=torch.from_numpy(std).float()
    )
    expected, expected_x = scored(lambda: adapted.predict_files(files, progress=False))
    torch.testing.assert_close(target_x, expected_x, rtol=1e-4, atol=1e-4)
    assert (target_x - checkpoint_x).abs().mean() > 0.1  # other statistics, other inputs
    for got, want in zip(target["predictions"], expected, strict=True):
        assert got["pred"] == want.label
        assert got["probs"] == pytest.approx(want.probs, abs=1e-5)
    assert any(
        got["probs"] != pytest.approx(plain["probs"], abs=1e-6)
        for got, plain in zip(target["predictions"], checkpoint["predictions"], strict=True)
    )


def test_unknown_target_classes_are_refused_or_dropped(predictor, emovo_root, emovo_cache):
    seven = EMOVO(root=emovo_root, classes=["ang", "sad", "hap", "neu", "dis", "fea", "sur"])
    with pytest.raises(ConfigError) as err:
        evaluate(predictor, seven, cache_dir=emovo_cache, progress=False)
    message = str(err.value)
    assert "['dis', 'fea', 'sur']" in message and "drop_unknown=true" in message
    assert "['ang', 'sad', 'hap', 'neu', 'dis', 'fea', 'sur']" in message  # target classes
    assert "['ang', 'sad', 'hap', 'neu']" in message  # checkpoint classes
    result = evaluate(predictor, seven, drop_unknown=True, cache_dir=emovo_cache, progress=False)
    others = emovo_files(emovo_root, EMOVO_OTHER)
    assert result["dropped"] == len(others) == 252
    assert result["dropped_classes"] == dict(
        Counter(EMOVO_OTHER[f.stem.split("-")[0]] for f in others)
    )
    assert result["n_utterances"] == len(emovo_files(emovo_root, EMOVO_FOUR))
    assert "dropped 252 utterances" in summary(result)


def test_bad_options_are_clear_errors(predictor, emovo_root, tmp_path):
    corpus = EMOVO(root=emovo_root)
    with pytest.raises(ConfigError, match=r"norm='bogus': choose checkpoint .* or target"):
        evaluate(predictor, corpus, norm="bogus")
    with pytest.raises(CorpusError, match=r"fold=6 is out of range for emovo: valid folds are"):
        evaluate(predictor, corpus, fold=6)
    broken = tmp_path / "emovo" / "f1"
    broken.mkdir(parents=True)
    (broken / "rab-f1-b1.wav").write_bytes(b"RIFF\x00\x00not audio")
    for f in emovo_files(emovo_root, EMOVO_FOUR):
        if f.name != "rab-f1-b1.wav":
            (tmp_path / "emovo" / f.parent.name).mkdir(exist_ok=True)
            (tmp_path / "emovo" / f.parent.name / f.name).symlink_to(f)
    with pytest.raises(AudioError, match=r"1 unusable audio file\(s\) in emovo .*rab-f1-b1"):
        evaluate(predictor, EMOVO(root=tmp_path / "emovo"), fold=0, progress=False)


def run_evaluate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ser.evaluate", *args],
        cwd=cwd, env=os.environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_command_line(trained, emovo_root, emovo_cache, emovo_result, tmp_path):
    _, checkpoint = trained
    out = tmp_path / "emovo.json"
    result = run_evaluate(
        f"ckpt={checkpoint}", "data=emovo", f"data.root={emovo_root}", f"out={out}",
        f"cache_dir={emovo_cache}", "device=cpu", "progress=false", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    written = read_strict_json(out)
    for key in ("uar", "wa", "n_utterances", "recall", "confusion", "predictions", "checkpoint",
                "corpus", "norm", "dropped"):  # fmt: skip
        assert key in written
    assert written["checkpoint"] == str(checkpoint) and written["corpus"] == "emovo"
    assert written["n_utterances"] == 336 and written["norm"] == "checkpoint"
    assert written["uar"] == pytest.approx(emovo_result["uar"], abs=1e-6)
    assert [p["pred"] for p in written["predictions"]] == [
        p["pred"] for p in emovo_result["predictions"]
    ]
    assert f"UAR {written['uar']:.4f}" in result.stdout and "norm=checkpoint" in result.stdout
    assert f"wrote {out}" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["ckpt=best.ckpt", "norm=bogus"],
            "error: norm='bogus': choose checkpoint (the training statistics stored in the "
            "checkpoint) or target (statistics of the scored target utterances)",
        ),
        ([], "error: missing required option ckpt: set it on the command line (ckpt=...)"),
    ],
)
def test_command_errors_are_one_line(overrides, message, capsys):
    cfg = compose_tool("evaluate", ["data=emovo", *overrides])
    with pytest.raises(SystemExit) as exit_:
        command(cfg)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_one_target_class_is_scored(predictor, emovo_root, emovo_cache):
    """Scoring a checkpoint on one class (its recall) is legitimate, unlike training on one."""
    corpus = EMOVO(root=emovo_root, classes=["ang"])
    result = evaluate(predictor, corpus, cache_dir=emovo_cache, progress=False)
    assert result["n_utterances"] == len(emovo_files(emovo_root, {"rab"})) == 84
    hits = sum(p["pred"] == "ang" for p in result["predictions"])
    assert result["uar"] == pytest.approx(hits / 84) == pytest.approx(result["recall"]["ang"])


@pytest.mark.parametrize("out", ["folder", "under_a_file"])
def test_an_unwritable_out_is_refused_before_scoring(trained, tmp_path, capsys, out):
    _, checkpoint = trained
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = tmp_path if out == "folder" else blocker / "result.json"
    cfg = compose_tool("evaluate", [f"ckpt={checkpoint}", "data=emovo", f"out={path}"])
    with pytest.raises(SystemExit) as exit_:
        command(cfg)
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: out={path}") and "UAR" not in capsys.readouterr().out
