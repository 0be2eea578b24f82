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
