"""User errors (ser.errors): one ``error:`` line and exit code 2; anything else is a bug."""

from __future__ import annotations

import traceback

import hydra
import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

import ser.data.audio
import ser.data.corpora
import ser.data.download
import ser.predict
from ser.config import CONFIG_DIR
from ser.errors import (
    AudioError,
    CheckpointError,
    ConfigError,
    CorpusError,
    DownloadError,
    OutOfMemoryError,
    RunFolderBusyError,
    SERError,
    exit_on_user_error,
    user_error,
)
from ser.instantiate import instantiate_trainer


def subclasses(cls: type) -> list[type]:
    """``cls`` and every class derived from it, however deep."""
    found = [cls]
    for sub in cls.__subclasses__():
        found += subclasses(sub)
    return found


def exit_message(fn, *args, capsys) -> list[str]:
    """Run ``fn(*args)``, expecting exit code 2; its stderr lines."""
    with pytest.raises(SystemExit) as exit_:
        fn(*args)
    assert exit_.value.code == 2
    return capsys.readouterr().err.splitlines()


# ------------------------------------------------------------------ the hierarchy


def test_the_user_errors_are_one_hierarchy():
    assert set(subclasses(SERError)) == {
        SERError, ConfigError, CorpusError, AudioError, DownloadError, CheckpointError,
        OutOfMemoryError, RunFolderBusyError,
    }  # fmt: skip


def test_old_import_paths_name_the_same_classes():
    assert ser.data.corpora.CorpusError is CorpusError
    assert ser.data.audio.AudioError is AudioError
    assert ser.data.download.DownloadError is DownloadError
    assert ser.predict.CheckpointError is CheckpointError
    # what callers catch them as
    for cls in (ConfigError, CorpusError, AudioError, CheckpointError):
        assert issubclass(cls, ValueError)
    assert issubclass(DownloadError, RuntimeError)
    assert issubclass(CheckpointError, ConfigError)


@pytest.mark.parametrize("cls", subclasses(SERError), ids=lambda cls: cls.__name__)
def test_every_user_error_is_one_line_and_exit_2(cls, capsys):
    @exit_on_user_error
    def run() -> None:
        raise cls(f"{cls.__name__}: what to change")

    assert exit_message(run, capsys=capsys) == [f"error: {cls.__name__}: what to change"]


def test_a_user_error_is_found_along_the_cause_and_context_chain(capsys):
    @exit_on_user_error
    def caused() -> None:
        try:
            raise CorpusError("data.root=/nowhere: no corpus there")
        except CorpusError as err:
            raise RuntimeError("wrapped") from err

    @exit_on_user_error
    def during() -> None:
        try:
            raise AudioError("a.wav: cannot read audio")
        except AudioError:
            raise KeyError("while handling it")  # noqa: B904  (the implicit context is the test)

    assert exit_message(caused, capsys=capsys) == ["error: data.root=/nowhere: no corpus there"]
    assert exit_message(during, capsys=capsys) == ["error: a.wav: cannot read audio"]


def test_an_unset_mandatory_option_names_it(capsys):
    cfg = OmegaConf.create({"data": {"root": "???"}})

    @exit_on_user_error
    def read() -> str:
        return cfg.data.root

    lines = exit_message(read, capsys=capsys)
    assert lines == ["error: missing required option data.root: set it on the command line "
                     "(data.root=...)"]  # fmt: skip


def test_other_errors_are_not_user_errors():
    for err in (ValueError("x"), TypeError("x"), RuntimeError("x"), KeyError("x")):
        assert user_error(err) is None


# ------------------------------------------------------------------ errors raised by Hydra


def bad_value(message: str) -> None:
    """A constructor with a bug: a plain ``ValueError``, not the user's mistake."""
    raise ValueError(message)


def bad_option(message: str) -> None:
    """A constructor refusing an option value: a :class:`ConfigError` naming it."""
    raise ConfigError(message)


def node(target: str, message: str, *, nested: bool) -> dict:
    """A config calling ``target`` (this module's), at the top or one level down."""
    leaf = {"_target_": f"{__name__}.{target}", "message": message}
    return {"_target_": "builtins.dict", "inner": leaf} if nested else leaf


@pytest.mark.parametrize("nested", [False, True])
def test_a_plain_value_error_while_instantiating_keeps_its_traceback(nested):
    build = exit_on_user_error(hydra.utils.instantiate)
    with pytest.raises(InstantiationException) as raised:
        build(OmegaConf.create(node("bad_value", "an internal bug", nested=nested)))
    assert user_error(raised.value) is None
    text = "".join(traceback.format_exception(raised.value))
    assert "in bad_value" in text and "ValueError: an internal bug" in text


@pytest.mark.parametrize("nested", [False, True])
def test_a_config_error_while_instantiating_is_one_line(nested, capsys):
    build = exit_on_user_error(hydra.utils.instantiate)
    config = OmegaConf.create(
        node("bad_option", "features.window='foo': choose one", nested=nested)
    )
    assert exit_message(build, config, capsys=capsys) == [
        "error: features.window='foo': choose one"
    ]


# ------------------------------------------------------------------ through the real config


@pytest.fixture
def compose_run(tmp_path, monkeypatch):
    """The real config tree, composed without Hydra's runtime (no corpus or cache is read)."""
    monkeypatch.setenv("SER_EMODB_ROOT", str(tmp_path / "emodb"))

    def _compose(overrides: list[str]):
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            return compose(
                "config",
                overrides=[
                    f"paths.root_dir={tmp_path}",
                    f"paths.output_dir={tmp_path / 'run'}",
                    "hardware=cpu",
                    "logger=none",
                    *overrides,
                ],
            )

    yield _compose
    GlobalHydra.instance().clear()


@exit_on_user_error
def build_run(cfg):
    """What ``train.py`` instantiates before training: data module, model and trainer."""
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    model = hydra.utils.instantiate(cfg.model, class_names=list(datamodule.classes))
    return datamodule, model, instantiate_trainer(cfg.trainer, callbacks=[], logger=False)


def test_the_default_config_builds(compose_run):
    datamodule, model, trainer = build_run(compose_run(["model=asrnn"]))
    assert trainer.max_steps == 3000 and model.combine == "max" and datamodule.padding == "mean"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["features.window=triangle"], "features.window='triangle': choose one of"),
        (["features.win_ms=50"], "features.win_ms=50: a frame of 800 samples exceeds "
                                 "features.n_fft=512"),
        (["datamodule.padding=edge"], "datamodule.padding='edge': choose one of mean, zeros"),
        (["datamodule.train_segments.minority.hop_s=0"], "Sliding(hop_s=0): give the hop in"),
        (["balance=fixed", "datamodule.balance.n=0"], "datamodule.balance.n=0 (balance=fixed)"),
        (["model.combine=median"], "model.combine='median': choose one of ('max', 'mean')"),
        (["model.net.window_hidden=0"], "model.net.window_hidden=0: must be a positive integer"),
        (["trainer.precision=16x"], "trainer: Precision '16x' is invalid"),
        (["trainer.accelerator=abacus"], "trainer: You selected an invalid accelerator name"),
        (["trainer.devices=0"], "trainer: `Trainer(devices=0)` value is not a valid input"),
    ],
)  # fmt: skip
def test_a_bad_option_value_is_one_line_naming_it(compose_run, capsys, overrides, message):
    cfg = compose_run(["model=asrnn", *overrides])
    errors = [line for line in exit_message(build_run, cfg, capsys=capsys) if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), errors


def test_predict_refuses_a_batch_size_below_1(tmp_path, capsys):
    audio = tmp_path / "a.wav"
    audio.touch()
    cfg = OmegaConf.create(
        {"ckpt": str(tmp_path / "best.ckpt"), "audio": str(audio), "out": None,
         "per_segment": False, "device": "cpu", "batch_size": 0, "progress": False}
    )  # fmt: skip
    lines = exit_message(ser.predict.predict, cfg, capsys=capsys)
    assert lines == ["error: batch_size=0: give a positive number of segments"]


class OutOfMemoryAtStep(L.Callback):
    """What CUDA raises when a batch does not fit (no GPU here: the error itself is raised)."""

    def __init__(self, error: str = "allocator") -> None:
        self.error = error

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.error == "allocator":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        raise RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")  # a workspace allocation


@pytest.mark.parametrize(
    ("error", "first_line"),
    [("allocator", "CUDA out of memory. Tried to allocate"),
     ("cudnn", "cuDNN error: CUDNN_STATUS_ALLOC_FAILED")],
)  # fmt: skip
def test_out_of_gpu_memory_is_one_line_naming_the_settings_to_lower(
    compose_config, capsys, error, first_line
):
    from ser.task import train

    cfg = compose_config(
        ["model=asrnn", "debug=fast", f"+callbacks.oom._target_={__name__}.OutOfMemoryAtStep",
         f"+callbacks.oom.error={error}"]
    )  # fmt: skip
    (line,) = exit_message(train, cfg, capsys=capsys)
    assert line.startswith(f"error: out of GPU memory ({first_line}")
    for setting in ("datamodule.batch_size (now 8)", "width=small", "runs_per_gpu"):
        assert setting in line
