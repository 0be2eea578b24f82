"""Reading offline W&B runs back, to check what a run told W&B without a server."""

import time
from pathlib import Path


def read_wandb_run(path: Path) -> dict:
    """The run record (name, group, job type, tags) of an offline ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    block, header = 32768, 7
    payload, position, chunks = b"", 7, []  # the file starts with a 7-byte 'W&B' header
    while position + header <= len(data):
        offset = position % block
        if block - offset < header:
            position += block - offset
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        payload += data[position + header : position + header + length]
        position += header + length
        if kind in (1, 4):  # FULL or LAST: one record complete
            chunks.append(payload)
            payload = b""
    found: dict = {"tags": []}
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(chunk)
        except Exception:
            continue
        if record.WhichOneof("record_type") == "run":
            run = record.run
            found |= {"display_name": run.display_name, "run_group": run.run_group,
                      "job_type": run.job_type}  # fmt: skip
            found["tags"] += list(run.tags)
    return found


def wait_for_run_record(path: Path, *, timeout_s: float = 30.0) -> dict:
    """:func:`read_wandb_run` once the run record is on disk.

    W&B's service process writes the offline file on its own schedule; on a loaded machine
    the record may land after ``wandb.finish()`` has returned.
    """
    deadline = time.monotonic() + timeout_s
    found = read_wandb_run(path)
    while "display_name" not in found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = read_wandb_run(path)
    return found
