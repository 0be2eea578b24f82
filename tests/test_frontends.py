"""Every front-end end to end through train.py, ser.evaluate and ser.predict, on real Emo-DB
files (a 4-speaker manifest of them):
openSMILE functionals with model=linear (the reference row), eGeMAPS low-level descriptors
with a network, and a tiny WavLM built from its config with model=probe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra_compose import compose_tool

from ser.checkpoint import DATA_KEY
from ser.data.corpora import Manifest
from ser.evaluate import evaluate
from ser.inference import Predictor
from ser.predict import predict
from ser.task import train


@pytest.fixture(scope="module")
def frontend_cache(tmp_path_factory) -> Path:
    """A feature cache shared by this module's runs (the session's log-mel cache stays as
    it is)."""
    return tmp_path_factory.mktemp("frontend-cache")


@pytest.fixture(scope="module")
def small_corpus(small_emodb) -> Path:
    """48 Emo-DB files: speakers 03 (test of fold 0), 08 (validation), 09 and 10."""
    return small_emodb


def fit(compose_config, tmp_path, cache: Path, corpus: Path, overrides: list[str]) -> dict:
    cfg = compose_config(
        ["debug=fast", "data=manifest", f"data.manifest={corpus}", f"paths.cache_dir={cache}",
         *overrides],
        run_dir=tmp_path / "run",
    )  # fmt: skip
    return train(cfg)


def path_of(corpus: Path, utterance_id: str) -> Path:
    return next(u.path for u in Manifest(manifest=corpus).utterances if u.id == utterance_id)


def check_evaluate_and_predict(results: dict, corpus: Path, tmp_path: Path) -> Predictor:
    """ser.evaluate on the run's fold gives its test results; ser.predict its predictions."""
    predictor = Predictor.from_checkpoint(results["best_checkpoint"], device="cpu")
    scored = evaluate(predictor, Manifest(manifest=corpus), fold=0)
    assert scored["uar"] == pytest.approx(results["test_uar"], abs=1e-6)
    expected = {p["id"]: p["pred"] for p in results["predictions"]}
    assert len(expected) == 12
    assert {p["id"]: p["pred"] for p in scored["predictions"]} == expected
    first = results["predictions"][0]
    path = path_of(corpus, first["id"])
    cfg = compose_tool(
        "predict",
        [f"ckpt={results['best_checkpoint']}", f"audio={path}", "windows=eval", "device=cpu",
         f"out={tmp_path / 'p.json'}"],
    )  # fmt: skip
    (prediction,) = predict(cfg)
    assert prediction.label == first["pred"]
    for c, p in first["probs"].items():
        assert prediction.probs[c] == pytest.approx(p, abs=1e-5)
    return predictor


def test_egemaps_functionals_with_the_linear_model(
    compose_config, frontend_cache, small_corpus, tmp_path, capsys
):
    results = fit(
        compose_config, tmp_path, frontend_cache, small_corpus, ["features=egemaps", "model=linear"]
    )
    assert results["model"] == "linear-egemaps"
    assert results["features"]["_target_"] == "ser.data.smile.OpenSmile"
    assert (tmp_path / "run" / "results.json").is_file()
    checkpoint = torch.load(results["best_checkpoint"], map_location="cpu", weights_only=False)
    data = checkpoint[DATA_KEY]
    assert data["features"]["feature_set"] == "eGeMAPSv02" and data["frame_rate"] is None
    assert data["segment_frames"] == 1  # one segment per utterance
    assert data["normalizer"]["std"].shape == (1, 88)
    net = checkpoint["hyper_parameters"]
    assert net["input_shape"] == [1, 1, 88] and net["net"]["hidden"] == []
    predictor = check_evaluate_and_predict(results, small_corpus, tmp_path)
    # windows=all on utterance-level features: the whole recording, one window
    wav = path_of(small_corpus, results["predictions"][0]["id"])
    whole = predictor.predict_windows(wav)
    assert whole.segments == 1 and whole.label == results["predictions"][0]["pred"]
    # resuming it with another front-end is refused before any audio is read, naming both
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        ["debug=fast", "data=manifest", f"data.manifest={small_corpus}", "features=compare",
         "model=linear", f"ckpt_path={last}",
         f"paths.cache_dir={tmp_path / 'fresh-cache'}"],
        run_dir=tmp_path / "run",
    )  # fmt: skip
    with pytest.raises(SystemExit):
        train(cfg)
    err = capsys.readouterr().err
    assert "the checkpoint was trained on features OpenSmile(feature_set=eGeMAPSv02" in err
    assert "not on this run's OpenSmile(feature_set=ComParE_2016" in err
    assert not (tmp_path / "fresh-cache").exists()


def test_egemaps_low_level_descriptors_feed_a_network(
    compose_config, frontend_cache, small_corpus, tmp_path
):
    results = fit(
        compose_config,
        tmp_path,
        frontend_cache,
        small_corpus,
        ["features=egemaps_lld", "model=acrnn"],
    )
    assert results["model"] == "acrnn-egemaps_lld"
    checkpoint = torch.load(results["best_checkpoint"], map_location="cpu", weights_only=False)
    assert checkpoint["hyper_parameters"]["input_shape"] == [1, 300, 25]  # 3 s at 100 frames/s
    check_evaluate_and_predict(results, small_corpus, tmp_path)


def test_a_frozen_encoder_with_the_probe(
    compose_config, frontend_cache, tiny_encoder, small_corpus, tmp_path
):
    results = fit(
        compose_config,
        tmp_path,
        frontend_cache,
        small_corpus,
        ["features=ssl", f"features.model={tiny_encoder}", "features.layer=1", "model=probe"],
    )
    assert results["model"] == f"probe-{tiny_encoder.name}-L1"
    checkpoint = torch.load(results["best_checkpoint"], map_location="cpu", weights_only=False)
    # 3 s segments at the encoder's 50 frames/s, its 32 hidden dims
    assert checkpoint["hyper_parameters"]["input_shape"] == [1, 150, 32]
    assert checkpoint[DATA_KEY]["features"] == {
        "_target_": "ser.data.ssl.SSLEncoder", "model": str(tiny_encoder), "layer": 1,
    }  # fmt: skip
    predictor = check_evaluate_and_predict(results, small_corpus, tmp_path)
    # every window of a recording: 2 s is shorter than one 3 s window -> one padded segment
    wav = path_of(small_corpus, results["predictions"][0]["id"])
    assert predictor.predict_windows(wav).segments == 1


def test_an_encoder_layer_past_its_depth_fails_before_any_audio(
    compose_config, tiny_encoder, tmp_path, capsys
):
    cfg = compose_config(
        ["debug=fast", "features=ssl", f"features.model={tiny_encoder}", "features.layer=7",
         "model=probe", f"paths.cache_dir={tmp_path / 'cache'}"],
    )  # fmt: skip
    with pytest.raises(SystemExit):
        train(cfg)
    assert "features.layer=7: the encoder has hidden states 0..2" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_feature_configs_name_their_runs(compose_config, tmp_path):
    """Runs of one model on two front-ends get two folders (a sweep over features=...)."""
    from ser.naming import model_label

    labels = set()
    for features in ("logmel", "egemaps", "compare", "egemaps_lld"):
        cfg = compose_config([f"features={features}", "model=linear"])
        labels.add(model_label(cfg.model.name, cfg.features))
    assert labels == {"linear", "linear-egemaps", "linear-compare", "linear-egemaps_lld"}
