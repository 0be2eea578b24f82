"""``hydra/launcher=ser_local``'s ``runs_per_gpu=auto`` without a GPU: the training steps it
measures, built from the real sweep config, and the fresh process it measures them in."""

from __future__ import annotations

import contextlib
import logging
import os

import pytest
from hydra_compose import compose_tool

from hydra_plugins.ser_launcher.launcher import (
    StepSpec,
    auto_runs_per_gpu,
    fresh_processes,
    step_spec,
    step_specs,
    worker_pool,
)
from ser.errors import ConfigError

GiB = 2**30


def job_config(*overrides: str):
    """One job of ``sweep.py`` (model=asrnn unless ``overrides`` say otherwise)."""
    return compose_tool("sweep", ["model=asrnn", *overrides])


@pytest.fixture
def manifest(tmp_path):
    """A manifest of three classes (``ang``, ``bor``, ``hap``) that names them only in its
    rows: ``data.classes`` is null, the corpus learns them from the CSV."""
    path = tmp_path / "corpus.csv"
    path.write_text("path,label,speaker\na.wav,ang,s1\nb.wav,Hap,s2\nc.wav,bor,s1\n")
    return path


@pytest.mark.parametrize(
    ("data", "num_classes"),
    [(["data=emodb"], 4), (["data=emodb_7class"], 7), (["data=manifest"], 3)],
)
def test_the_step_takes_its_class_count_from_the_corpus(manifest, data, num_classes):
    if data == ["data=manifest"]:
        data = [*data, f"data.manifest={manifest}"]
    spec = step_spec(job_config(*data))
    assert spec.num_classes == num_classes
    assert (spec.batch_size, spec.in_channels, spec.frames, spec.n_mels) == (30, 3, 300, 40)
    assert type(spec.net) is dict and spec.net["_target_"] == "ser.models.ASRNN"


def test_jobs_that_differ_only_in_fold_or_seed_are_one_step():
    configs = [job_config("fold=0"), job_config("fold=1", "seed=3"), job_config("model=acrnn")]
    specs = step_specs(configs)
    assert [spec.net["_target_"] for spec in specs] == ["ser.models.ASRNN", "ser.models.ACRNN"]


def cpu_step(specs: list[StepSpec]) -> tuple[int, int]:
    """The measurement's stand-in without a GPU, run in the fresh process: each network is
    built from its spec alone and takes one step on the CPU (2 segments of the spec's
    shape); then 20 GiB of 80 GiB, which makes 3 runs per GPU."""
    import hydra
    import torch

    for spec in specs:
        net = hydra.utils.instantiate(spec.net)(num_classes=spec.num_classes)
        out = net(torch.randn(2, spec.in_channels, spec.frames, spec.n_mels))
        assert out.shape == (2, spec.num_classes), out.shape
        out.float().mean().backward()
    return 20 * GiB, 80 * GiB


def test_the_step_is_measured_in_a_fresh_process(manifest, caplog):
    caplog.set_level(logging.INFO, logger="hydra_plugins.ser_launcher.launcher")
    cfg = job_config("data=manifest", f"data.manifest={manifest}")
    assert auto_runs_per_gpu([cfg], gpus_per_job=1, measure=cpu_step) == 3
    assert "a training step takes up to 20.00 GiB of the GPU's 80 GiB: 3 runs" in caplog.text


def no_gpu(specs: list[StepSpec]) -> tuple[int, int]:
    raise RuntimeError("no CUDA GPU is visible")


def dies(specs: list[StepSpec]) -> tuple[int, int]:
    os._exit(1)


@pytest.mark.parametrize(
    ("measure", "error"),
    [(no_gpu, "RuntimeError: no CUDA GPU is visible"), (dies, "BrokenProcessPool: ")],
    ids=["raises", "dies"],
)
def test_a_failed_measurement_leaves_one_run_per_gpu_and_says_how_to_set_it(caplog, measure, error):
    caplog.set_level(logging.INFO, logger="hydra_plugins.ser_launcher.launcher")
    assert auto_runs_per_gpu([job_config()], gpus_per_job=1, measure=measure) == 1
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"measuring a training step failed ({error}" in record.getMessage()
    assert "1 run per GPU; set hydra.launcher.runs_per_gpu=N" in record.getMessage()


def test_without_a_gpu_the_real_measurement_fails_in_the_child_and_leaves_one_run(caplog):
    """:func:`measure_steps` itself goes to the fresh process, also after Hydra's plugin scan
    has run the launcher's module again (the first composed config here scans)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the step is measured for real")
    assert auto_runs_per_gpu([job_config()], gpus_per_job=1) == 1
    (record,) = caplog.records
    assert "measuring a training step failed (RuntimeError: " in record.getMessage()


#: set by a job that "breaks" its process, as a fatal CUDA error breaks the CUDA context
BROKEN: list[int] = []


def job(poison: bool) -> tuple[int, bool, str]:
    """A job in a worker: its process, whether an earlier job broke that process, its GPUs."""
    if poison:
        BROKEN.append(os.getpid())
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return os.getpid(), bool(BROKEN), os.environ["CUDA_VISIBLE_DEVICES"]


def run_jobs(slots: list[dict[str, str]], *, fresh: bool, poison_first: bool = False):
    """Four jobs on ``slots``, one after the other; the outcome of the last three."""
    with worker_pool(slots, fresh=fresh) as submit:
        first = submit(job, poison_first)
        with pytest.raises(RuntimeError) if poison_first else contextlib.nullcontext():
            first.result()
        return [submit(job, False).result() for _ in range(3)]


GPU_SLOT = {"CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "1"}
CPU_SLOT = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def test_on_a_gpu_a_broken_job_cannot_reach_the_jobs_after_it():
    assert fresh_processes("auto", [GPU_SLOT])
    outcomes = run_jobs([GPU_SLOT], fresh=True, poison_first=True)
    assert len({pid for pid, _, _ in outcomes}) == 3  # a new process for every job
    assert not any(broken for _, broken, _ in outcomes)
    assert {gpus for _, _, gpus in outcomes} == {"0"}  # each one in the slot's GPUs


def test_on_the_cpu_workers_are_reused_so_jobs_do_not_import_again():
    assert not fresh_processes("auto", [CPU_SLOT])
    outcomes = run_jobs([CPU_SLOT], fresh=False, poison_first=True)
    assert len({pid for pid, _, _ in outcomes}) == 1
    assert all(broken for _, broken, _ in outcomes)  # what a fresh process per job prevents


def test_fresh_process_takes_a_bool_or_auto():
    assert fresh_processes(True, [CPU_SLOT]) and not fresh_processes(False, [GPU_SLOT])
    with pytest.raises(ConfigError, match=r"hydra\.launcher\.fresh_process='yes'"):
        fresh_processes("yes", [CPU_SLOT])
