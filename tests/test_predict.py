"""The inference command line (ser.predict): a folder in, the table and JSON/CSV files out."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra_compose import compose_tool
from strict_json import read_strict_json

from ser.predict import predict


def run_predict(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ser.predict", *args],
        cwd=cwd, env=os.environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_command_line_writes_json_and_per_segment_csv(trained, audio_dir, tmp_path, capsys):
    results, checkpoint = trained
    folder, names = audio_dir
    out = tmp_path / "predictions.json"
    result = run_predict(
        f"ckpt={checkpoint}", f"audio={folder}", f"out={out}", "per_segment=true", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    entries = {Path(e["path"]).stem: e for e in read_strict_json(out)}
    assert set(entries) == {*names, "corrupt", "stereo", "nan"}
    assert entries["nan"]["label"] is None and entries["nan"]["duration_s"] is None
    assert "non-finite" in entries["nan"]["error"]
    expected = {p["id"]: p["pred"] for p in results["predictions"]}
    assert all(entries[n]["label"] == expected[n] for n in names)
    assert len(entries["03a01Fa"]["segment_probs"]) == entries["03a01Fa"]["segments"] == 1
    csv_out = tmp_path / "predictions.csv"  # the same command, in-process
    predict(compose_tool("predict", [f"ckpt={checkpoint}", f"audio={folder}", f"out={csv_out}",
                                     "per_segment=true", "progress=false"]))  # fmt: skip
    header = csv_out.read_text().splitlines()[0].split(",")
    assert header == [
        "path",
        "pred",
        "prob_ang",
        "prob_sad",
        "prob_hap",
        "prob_neu",
        "segments",
        "duration_s",
        "error",
    ]
    assert len((tmp_path / "predictions_segments.csv").read_text().splitlines()) == 1 + 5
    csv_rows = {Path(r["path"]).stem: r for r in csv.DictReader(csv_out.open())}
    assert csv_rows["nan"]["pred"] == csv_rows["nan"]["prob_ang"] == csv_rows["nan"]["duration_s"]
    assert csv_rows["nan"]["pred"] == "" and "non-finite" in csv_rows["nan"]["error"]
    with pytest.raises(SystemExit) as exit_:
        predict(compose_tool("predict", [f"ckpt={tmp_path / 'nope.ckpt'}", f"audio={folder}"]))
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: checkpoint")


def test_a_long_recording_gets_a_timeline_and_a_plot(trained, emovo_root, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    _, checkpoint = trained
    waves = [sf.read(p, dtype="float32")[0] for p in sorted((emovo_root / "m1").glob("*.wav"))[:8]]
    long = tmp_path / "call.wav"
    sf.write(long, np.concatenate(waves), 16000)
    duration = sf.info(long).duration
    timeline, plot = tmp_path / "windows.csv", tmp_path / "call.png"
    (prediction,) = predict(compose_tool("predict", [
        f"ckpt={checkpoint}", f"audio={long}", f"timeline={timeline}", f"plot={plot}",
        "hop_s=1.0", "progress=false",
    ]))  # fmt: skip
    rows_ = list(csv.DictReader(timeline.open()))
    assert len(rows_) == prediction.segments == len(prediction.segment_probs) > 10
    starts = [float(r["start_s"]) for r in rows_]
    assert starts[:3] == [0.0, 1.0, 2.0] and float(rows_[-1]["end_s"]) <= duration
    assert duration - float(rows_[-1]["end_s"]) < 0.03  # the last window ends with the file
    assert all(r["pred"] == max(("ang", "sad", "hap", "neu"), key=lambda c: float(r[f"prob_{c}"]))
               for r in rows_)  # fmt: skip
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {timeline} ({len(rows_)} windows)" in capsys.readouterr().out
    for bad, message in (
        (["windows=eval", f"timeline={timeline}"], "timeline= and plot= need windows=all"),
        (["hop_s=0"], "hop_s=0: give the windows' step in seconds"),
        (["windows=some"], "windows=some: choose all"),
    ):
        with pytest.raises(SystemExit):
            predict(compose_tool("predict", [f"ckpt={checkpoint}", f"audio={long}", *bad]))
        assert message in capsys.readouterr().err
