"""Progress for job logs (EpochLines) and the terminal choice (progress_bar)."""

import csv
import io
import re

from lightning.pytorch.callbacks import RichProgressBar

from ser.callbacks import EpochLines, progress_bar
from ser.task import train


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_progress_bar_and_a_file_gets_lines():
    assert isinstance(progress_bar(stream=Terminal()), RichProgressBar)
    assert isinstance(progress_bar(stream=io.StringIO()), EpochLines)


def test_one_line_per_epoch_with_the_logged_metrics_and_an_early_estimate(
    compose_config, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    cfg = compose_config(
        [
            "model=asrnn", "debug=fast", "trainer.max_epochs=3", "trainer.max_steps=9",
            "callbacks.progress_bar._target_=ser.callbacks.EpochLines",
            "+callbacks.progress_bar.slow_s=0",
        ],
        run_dir=run_dir,
    )  # fmt: skip
    train(cfg)
    out = capsys.readouterr().out.splitlines()
    epochs = [line for line in out if line.startswith("epoch ")]
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        val_uar = [float(r["val/uar"]) for r in csv.DictReader(f) if r["val/uar"]]
    assert len(epochs) == len(val_uar) == 3
    for epoch, (line, uar) in enumerate(zip(epochs, val_uar, strict=True)):
        fields = dict(re.findall(r"(epoch|step|val/uar) ([\d/.]+)", line))
        assert int(fields["epoch"]) == epoch
        assert fields["step"] == f"{3 * (epoch + 1)}/9"
        assert float(fields["val/uar"]) == round(uar, 4)
        assert re.search(r"\d+\.\d seg/s", line)
    (estimate,) = [line for line in out if line.startswith("estimated duration")]
    assert out.index(estimate) < out.index(epochs[1])  # after 1 + 5 steps, before epoch 1 ends
    assert "more steps" in estimate and "faster: width=small" in estimate
