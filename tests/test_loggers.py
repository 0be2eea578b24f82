"""ResumableCSVLogger: metrics.csv survives a resumed run, and a fresh run replaces it."""

import csv

from ser.loggers import ResumableCSVLogger


def log_epochs(save_dir, epochs, *, extra: str | None = None) -> None:
    logger = ResumableCSVLogger(save_dir=save_dir, name="csv", version="")
    for epoch in epochs:
        logger.log_metrics({"train/loss": 1.0 / (epoch + 1), "epoch": epoch}, step=10 * epoch)
        values = {"val/uar": epoch / 10, "epoch": epoch}
        if extra:
            values[extra] = 0.5
        logger.log_metrics(values, step=10 * epoch + 9)
    logger.save()


def rows(save_dir) -> list[dict[str, str]]:
    with open(save_dir / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_resumed_run_keeps_the_epochs_before_its_checkpoint(tmp_path):
    log_epochs(tmp_path, range(4))  # epoch 3 was cut short by the kill
    log_epochs(tmp_path, range(3, 6), extra="val/wa")  # resumed after epoch 2, a new column
    table = rows(tmp_path)
    epochs = [int(r["epoch"]) for r in table if r["val/uar"]]
    assert epochs == [0, 1, 2, 3, 4, 5]
    assert [float(r["val/uar"]) for r in table if r["val/uar"]] == [e / 10 for e in epochs]
    assert {int(r["epoch"]) for r in table if r["val/wa"]} == {3, 4, 5}


def test_a_fresh_run_in_the_same_folder_replaces_the_old_rows(tmp_path):
    log_epochs(tmp_path, range(5))
    log_epochs(tmp_path, range(2))
    assert [int(r["epoch"]) for r in rows(tmp_path) if r["val/uar"]] == [0, 1]
