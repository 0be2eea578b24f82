"""``hydra/launcher=ser_local``: run a multirun's jobs in parallel on one machine.

Each worker process owns a slot: with GPUs, a set of ``gpus_per_job`` GPUs
(``CUDA_VISIBLE_DEVICES`` is set before CUDA starts), shared by ``runs_per_gpu`` workers so
that small runs do not leave a large GPU idle (``auto``: as many as the sweep's largest
model fits, from one training step measured in a fresh process); on CPU, an equal share of
the cores (``OMP_NUM_THREADS`` and ``torch.set_num_threads``), so that jobs do not
oversubscribe.
On GPUs every job runs in a fresh worker process (``fresh_process=auto``): a fatal CUDA
error leaves a process's CUDA context broken, and a reused worker would fail every later
job it takes. On CPU the workers are reused, so that jobs do not pay the imports again.
Jobs are queued: a free slot takes the next job. Progress (finished/total, time left) is
logged as jobs end; a job that failed (``error.json`` in its folder) is named, and the others
go on.
"""

import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from ser.errors import ConfigError, exit_on_user_error
from ser.text import duration

log = logging.getLogger(__name__)


@dataclass
class LocalParallelConf:
    """Options of ``hydra/launcher=ser_local``."""

    _target_: str = "hydra_plugins.ser_launcher.launcher.LocalParallelLauncher"
    #: parallel jobs; -1: one per ``gpus_per_job`` visible GPUs, or cores // 2 without GPUs
    n_jobs: int = -1
    gpus_per_job: int = 1
    #: workers sharing one GPU set; ``auto``: :func:`runs_per_gpu` from a measured step
    runs_per_gpu: Any = "auto"
    #: a new worker process for every job; ``auto``: on GPUs (a CUDA error cannot reach
    #: later jobs), not on CPU (no new imports per job)
    fresh_process: Any = "auto"


ConfigStore.instance().store(
    group="hydra/launcher", name="ser_local", node=LocalParallelConf, provider="ser"
)


def visible_gpus() -> list[str]:
    """GPU ids this process may use (``CUDA_VISIBLE_DEVICES``, else every GPU torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() not in ("", "-1")]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


#: GPU memory a process takes before its first tensor (CUDA context, cuDNN/cuBLAS handles)
CUDA_CONTEXT_BYTES = 600 * 2**20
#: at most this many runs share one GPU set (beyond that they only queue for its SMs)
MAX_RUNS_PER_GPU = 8


def runs_per_gpu(*, peak_bytes: int, gpu_bytes: int, headroom: float = 0.2) -> int:
    """How many runs fit on one GPU: each takes its measured training-step peak plus a CUDA
    context, and ``headroom`` of the GPU's memory stays free (fragmentation, validation).

    Example:
        >>> GiB = 2**30
        >>> runs_per_gpu(peak_bytes=3 * GiB, gpu_bytes=80 * GiB)   # 64 GiB / 3.6 GiB
        8
        >>> runs_per_gpu(peak_bytes=20 * GiB, gpu_bytes=80 * GiB)
        3
        >>> runs_per_gpu(peak_bytes=90 * GiB, gpu_bytes=80 * GiB)  # does not fit: one, as before
        1
    """
    per_run = peak_bytes + CUDA_CONTEXT_BYTES
    fits = int(gpu_bytes * (1 - headroom) // per_run)
    return max(1, min(MAX_RUNS_PER_GPU, fits))


def slots(
    *, n_jobs: int, gpus_per_job: int, gpus: list[str], cpus: int, runs_per_gpu: int = 1
) -> list[dict[str, str]]:
    """Environment of each worker slot: GPUs (each set shared by ``runs_per_gpu`` slots), or
    an equal share of the CPU cores.

    Example:
        >>> for slot in slots(n_jobs=-1, gpus_per_job=2, gpus=["0", "1", "2", "3"], cpus=16):
        ...     print(slot)
        {'CUDA_VISIBLE_DEVICES': '0,1', 'OMP_NUM_THREADS': '8'}
        {'CUDA_VISIBLE_DEVICES': '2,3', 'OMP_NUM_THREADS': '8'}
        >>> for slot in slots(n_jobs=-1, gpus_per_job=1, gpus=["0"], cpus=16, runs_per_gpu=4):
        ...     print(slot)
        {'CUDA_VISIBLE_DEVICES': '0', 'OMP_NUM_THREADS': '4'}
        {'CUDA_VISIBLE_DEVICES': '0', 'OMP_NUM_THREADS': '4'}
        {'CUDA_VISIBLE_DEVICES': '0', 'OMP_NUM_THREADS': '4'}
        {'CUDA_VISIBLE_DEVICES': '0', 'OMP_NUM_THREADS': '4'}
    """
    if gpus_per_job < 1:
        raise ConfigError(f"hydra.launcher.gpus_per_job={gpus_per_job}: it must be 1 or more")
    if runs_per_gpu < 1:
        raise ConfigError(
            f"hydra.launcher.runs_per_gpu={runs_per_gpu}: it must be 1 or more, or auto"
        )
    if gpus:
        count = len(gpus) // gpus_per_job
        if count == 0:
            raise ConfigError(
                f"hydra.launcher.gpus_per_job={gpus_per_job} but only {len(gpus)} GPU(s) are "
                f"visible ({','.join(gpus)}): lower gpus_per_job or set CUDA_VISIBLE_DEVICES"
            )
        sets = [",".join(gpus[i * gpus_per_job : (i + 1) * gpus_per_job]) for i in range(count)]
        groups = [gpu_set for _ in range(runs_per_gpu) for gpu_set in sets]
        count = min(len(groups), n_jobs) if n_jobs > 0 else len(groups)
        groups = groups[:count]
    else:
        count = n_jobs if n_jobs > 0 else max(1, cpus // 2)
        groups = ["" for _ in range(count)]
    threads = str(max(1, cpus // count))
    return [{"CUDA_VISIBLE_DEVICES": g, "OMP_NUM_THREADS": threads} for g in groups]


@dataclass(frozen=True)
class StepSpec:
    """One training step to measure, as plain data: it goes to a fresh process that needs no
    Hydra config (resolvers, singletons) to build the network and its batch."""

    #: ``model.net`` resolved: a partial network factory for :func:`hydra.utils.instantiate`
    net: dict[str, Any]
    num_classes: int
    batch_size: int
    in_channels: int
    frames: int
    n_mels: int
    precision: str


def step_spec(cfg: DictConfig) -> StepSpec:
    """The training step of job config ``cfg``. Its class count is the corpus's, as the data
    module gives it to the model (a manifest learns its classes from its CSV)."""
    import hydra

    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    frontend = hydra.utils.instantiate(cfg.features)
    return StepSpec(
        net=net,
        num_classes=len(hydra.utils.instantiate(cfg.data).classes),
        batch_size=cfg.datamodule.batch_size,
        in_channels=frontend.channels,
        frames=frontend.segment_frames(cfg.datamodule.segment_s),
        n_mels=frontend.dims,
        precision=str(cfg.trainer.precision),
    )


def step_specs(configs: Iterable[DictConfig]) -> list[StepSpec]:
    """The distinct training steps of ``configs``: jobs that differ only in fold or seed are
    measured once."""
    distinct: dict[str, DictConfig] = {}
    for cfg in configs:
        net, data, features = (
            OmegaConf.to_yaml(node, resolve=True)
            for node in (cfg.model.net, cfg.data, cfg.features)
        )
        key = (
            f"{net}{data}{features}{cfg.datamodule.segment_s} {cfg.datamodule.batch_size} "
            f"{cfg.trainer.precision}"
        )
        distinct.setdefault(key, cfg)
    return [step_spec(cfg) for cfg in distinct.values()]


def training_step_peak_bytes(spec: StepSpec) -> int:
    """Peak GPU memory of one training step of ``spec``'s network on a random batch of its
    batch size and segment shape, in its precision (measured on the first visible GPU)."""
    import hydra
    import torch

    device = torch.device("cuda", 0)
    net = hydra.utils.instantiate(spec.net)(
        num_classes=spec.num_classes, in_channels=spec.in_channels, frames=spec.frames,
        n_mels=spec.n_mels,
    ).to(device)  # fmt: skip
    x = torch.randn(spec.batch_size, spec.in_channels, spec.frames, spec.n_mels, device=device)
    torch.cuda.reset_peak_memory_stats(device)
    bf16 = spec.precision.startswith("bf16")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        loss = net(x).float().mean()
    loss.backward()
    peak = torch.cuda.max_memory_allocated(device)
    del net, x, loss
    torch.cuda.empty_cache()
    return peak


def measure_steps(specs: list[StepSpec]) -> tuple[int, int]:
    """The largest training-step peak of ``specs`` and the first visible GPU's memory, in
    bytes."""
    import torch

    peak = max(training_step_peak_bytes(spec) for spec in specs)
    return peak, torch.cuda.get_device_properties(0).total_memory


def auto_runs_per_gpu(
    configs: Iterable[DictConfig],
    *,
    gpus_per_job: int,
    measure: Callable[[list[StepSpec]], tuple[int, int]] | None = None,
) -> int:
    """:func:`runs_per_gpu` for the largest training step of the job ``configs``, measured
    by ``measure`` (default :func:`measure_steps`) in one fresh process: CUDA started here
    would hold a context and cached memory for the whole sweep. A failed measurement falls
    back to 1 run per GPU with a warning, so that the sweep still runs."""
    # looked up now, not bound as the default: Hydra's plugin scan runs this module again,
    # and pickle sends a function by name only if that name still holds it
    measure = measure or measure_steps
    context = multiprocessing.get_context("spawn")
    try:
        specs = step_specs(configs)
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            peak, total = pool.submit(measure, specs).result()
    except Exception as err:
        log.warning(
            "ser_local: measuring a training step failed (%s: %s): 1 run per GPU; set "
            "hydra.launcher.runs_per_gpu=N to share each GPU among N runs",
            type(err).__name__, err,
        )  # fmt: skip
        return 1
    runs = runs_per_gpu(peak_bytes=peak, gpu_bytes=total * gpus_per_job)
    log.info(
        "ser_local: a training step takes up to %.2f GiB of the GPU's %.0f GiB: %d runs "
        "per GPU (hydra.launcher.runs_per_gpu=auto)", peak / 2**30, total / 2**30, runs,
    )  # fmt: skip
    return runs


#: this worker's slot queue and slot (set by :func:`_init_worker`)
_SLOT: tuple[Any, dict[str, str]] | None = None


def _init_worker(queue: Any) -> None:
    """Claim a slot and pin this worker to its GPUs / thread budget (before CUDA starts)."""
    global _SLOT
    slot = queue.get()
    _SLOT = (queue, slot)
    os.environ.update(slot)
    os.environ["MKL_NUM_THREADS"] = slot["OMP_NUM_THREADS"]
    import torch

    torch.set_num_threads(int(slot["OMP_NUM_THREADS"]))


def _in_slot(fresh: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in this worker; with ``fresh`` the worker ends after it, so its slot
    goes back to the queue for the process that replaces it."""
    try:
        return fn(*args)
    finally:
        if fresh and _SLOT is not None:
            queue, slot = _SLOT
            queue.put(slot)


@contextmanager
def worker_pool(
    worker_slots: list[dict[str, str]], *, fresh: bool
) -> Iterator[Callable[..., Future]]:
    """Worker processes, one per slot, each pinned to its slot; yields ``submit(fn, *args)``.

    With ``fresh`` each job gets a new process (``max_tasks_per_child=1``) in the slot of
    the one before it; otherwise a worker runs job after job.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Manager().Queue()
    for slot in worker_slots:
        queue.put(slot)
    with ProcessPoolExecutor(
        max_workers=len(worker_slots),
        mp_context=context,
        initializer=_init_worker,
        initargs=(queue,),
        max_tasks_per_child=1 if fresh else None,
    ) as pool:
        yield functools.partial(pool.submit, _in_slot, fresh)


def fresh_processes(setting: Any, worker_slots: list[dict[str, str]]) -> bool:
    """``fresh_process``: ``auto`` is true when the workers use GPUs.

    Example:
        >>> fresh_processes("auto", [{"CUDA_VISIBLE_DEVICES": "0"}])
        True
        >>> fresh_processes("auto", [{"CUDA_VISIBLE_DEVICES": ""}])
        False
    """
    if setting == "auto":
        return any(slot.get("CUDA_VISIBLE_DEVICES") for slot in worker_slots)
    if not isinstance(setting, bool):
        raise ConfigError(f"hydra.launcher.fresh_process={setting!r}: give true, false or auto")
    return setting


def _execute(idx: int, overrides: list[str], shared: bytes) -> bytes:
    """Run one job in a worker. ``shared`` is what every job gets, cloudpickled (task
    functions live in ``__main__``): Hydra context, config, task function, singletons."""
    hydra_context, config, task_function, singleton_state = cloudpickle.loads(shared)
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    result = run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    return cloudpickle.dumps(result)


class LocalParallelLauncher(Launcher):
    """Parallel jobs on one machine, one GPU set (or CPU share) per worker."""

    def __init__(
        self,
        n_jobs: int = -1,
        gpus_per_job: int = 1,
        runs_per_gpu: Any = "auto",
        fresh_process: Any = "auto",
    ) -> None:
        self.n_jobs = n_jobs
        self.gpus_per_job = gpus_per_job
        self.runs_per_gpu = runs_per_gpu
        self.fresh_process = fresh_process
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _runs_per_gpu(self, job_overrides: list[list[str]]) -> int:
        """``runs_per_gpu``, or with ``auto`` what the sweep's largest training step allows."""
        if self.runs_per_gpu != "auto":
            if not isinstance(self.runs_per_gpu, int):
                raise ConfigError(
                    f"hydra.launcher.runs_per_gpu={self.runs_per_gpu!r}: give a number or auto"
                )
            return self.runs_per_gpu
        configs = (
            self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            for overrides in job_overrides
        )
        return auto_runs_per_gpu(configs, gpus_per_job=self.gpus_per_job)

    def launch(self, job_overrides: list[list[str]], initial_job_idx: int) -> list[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        gpus = visible_gpus()
        worker_slots = exit_on_user_error(slots)(
            n_jobs=self.n_jobs,
            gpus_per_job=self.gpus_per_job,
            gpus=gpus,
            cpus=os.cpu_count() or 1,
            # measured only where the GPUs can hold a job at all (slots names the shortfall)
            runs_per_gpu=(
                self._runs_per_gpu(job_overrides) if len(gpus) >= self.gpus_per_job else 1
            ),
        )
        workers = min(len(worker_slots), len(job_overrides))
        fresh = exit_on_user_error(fresh_processes)(self.fresh_process, worker_slots)
        log.info(
            "ser_local: %d jobs on %d workers %s%s",
            len(job_overrides),
            workers,
            worker_slots[:workers],
            ", a fresh process per job" if fresh else "",
        )
        for idx, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))
        shared = cloudpickle.dumps(
            (self.hydra_context, self.config, self.task_function, Singleton.get_state())
        )
        results: list[JobReturn | None] = [None] * len(job_overrides)
        started = time.monotonic()
        with worker_pool(worker_slots[:workers], fresh=fresh) as submit:
            pending = {
                submit(_execute, initial_job_idx + idx, overrides, shared): idx
                for idx, overrides in enumerate(job_overrides)
            }
            done_count = 0
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    idx = pending.pop(future)
                    results[idx] = result = cloudpickle.loads(future.result())
                    done_count += 1
                    elapsed = time.monotonic() - started
                    left = elapsed / done_count * (len(job_overrides) - done_count)
                    job = " ".join(filter_overrides(job_overrides[idx]))
                    # a failed run recorded its error (ser.task.train) and the others go on
                    error = Path(result.hydra_cfg.hydra.runtime.output_dir) / "error.json"
                    if error.is_file():
                        job += f": failed, see {error}"
                    log.info(
                        "ser_local: %d of %d jobs done (%s), about %s left",
                        done_count, len(job_overrides), job, duration(left),
                    )  # fmt: skip
        return results
