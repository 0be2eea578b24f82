"""ser.hardware: what a machine can do is checked where the run trains, and a run's identity
and numerics never depend on the machine."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch

from ser import hardware
from ser.errors import ConfigError
from ser.hardware import (
    check_hardware,
    cpu_flags,
    cpu_name,
    cpu_supports_bf16,
    device_record,
    hardware_label,
    requested_gpus,
)
from ser.identity import config_hash, protocol_hash


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx2 avx512f avx512_bf16 amx_tile", True),
        ("fpu avx2 amx_bf16 amx_tile", True),
        ("fpu avx2 avx512f avx512_vnni", False),
        ("fpu avx2 avx512_bf16x", False),
    ],
)
def test_cpu_bf16_support_is_read_from_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n\n")
    assert cpu_supports_bf16(cpuinfo) is expected
    assert cpu_name(cpuinfo) == "Some CPU 9000"


def test_cpu_bf16_support_is_false_where_the_flags_are_unknown(tmp_path):
    assert cpu_supports_bf16(tmp_path / "absent") is False
    assert cpu_name(tmp_path / "absent")


#: ``/proc/cpuinfo`` of a CPU with native bf16 (AVX512-BF16 and AMX) and of one without
CPUINFO = {
    True: "processor\t: 0\nmodel name\t: Some CPU 9000\n"
    "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
    "processor\t: 1\nmodel name\t: Some CPU 9000\n"
    "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n",
    False: "processor\t: 0\nmodel name\t: Other CPU 8000\n"
    "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_fp16\n\n",
}


def simulate_host(monkeypatch, tmp_path, *, gpus: int, bf16_cpu: bool) -> None:
    """This process as a machine with ``gpus`` GPUs and a CPU with or without bf16: the
    flags are read from a fixed ``/proc/cpuinfo`` text (:data:`CPUINFO`)."""
    cpuinfo = tmp_path / f"cpuinfo-bf16-{bf16_cpu}"
    cpuinfo.write_text(CPUINFO[bf16_cpu])
    monkeypatch.setattr(hardware, "gpu_count", lambda: gpus)
    # the real parser, on the fixed text instead of this machine's /proc/cpuinfo
    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": cpu_flags(cpuinfo))


HOSTS = [(0, False), (0, True), (1, False), (4, True)]


@pytest.mark.slow  # seconds: left out of make test-fast
@pytest.mark.parametrize("command", [[], ["hardware=gpu"], ["precision=bf16"], ["hardware=ddp"]])
def test_a_command_has_one_identity_and_precision_on_every_host(
    compose_config, monkeypatch, tmp_path, command
):
    seen = set()
    for gpus, bf16_cpu in HOSTS:
        simulate_host(monkeypatch, tmp_path, gpus=gpus, bf16_cpu=bf16_cpu)
        cfg = compose_config(["model=asrnn", *command])
        seen.add((config_hash(cfg), protocol_hash(cfg), cfg.trainer.precision))
    assert len(seen) == 1, seen
    (precision,) = {p for *_, p in seen}
    assert precision == ("bf16-mixed" if "precision=bf16" in command else "32-true")


@pytest.mark.slow  # seconds: left out of make test-fast
def test_precision_is_one_word_and_an_experiment_may_set_it(compose_config):
    assert compose_config([]).trainer.precision == "32-true"
    assert compose_config(["precision=bf16"]).trainer.precision == "bf16-mixed"
    assert compose_config(["precision=fp16"]).trainer.precision == "16-mixed"
    assert compose_config(["experiment=emodb_best"]).trainer.precision == "bf16-mixed"
    fp32 = compose_config(["experiment=emodb_best", "precision=fp32"])
    assert fp32.trainer.precision == "32-true"
    # the precision's choice is in the config already: it does not split the protocol
    plain = compose_config(["trainer.precision=bf16-mixed"])
    word = compose_config(["precision=bf16"])
    assert protocol_hash(plain) == protocol_hash(word)
    assert config_hash(plain) == config_hash(word)


def test_a_gpu_run_on_a_machine_without_one_is_one_error_naming_the_host(monkeypatch, tmp_path):
    simulate_host(monkeypatch, tmp_path, gpus=0, bf16_cpu=True)
    with pytest.raises(
        ConfigError, match=r"hardware=gpu/ddp needs a GPU but none is visible on n7"
    ):
        check_hardware({"accelerator": "gpu", "devices": 1}, host="n7")
    check_hardware({"accelerator": "auto", "devices": 1, "precision": "32-true"})


@pytest.mark.parametrize(("devices", "wanted"), [(4, 4), ("0,1,2", 3), ([0, 1, 2, 3, 4], 5)])
def test_more_gpus_than_the_node_has_is_one_error(monkeypatch, tmp_path, devices, wanted):
    simulate_host(monkeypatch, tmp_path, gpus=2, bf16_cpu=False)
    with pytest.raises(ConfigError, match=rf"asks for {wanted} GPUs but n7 has 2 visible"):
        check_hardware({"accelerator": "gpu", "devices": devices}, host="n7")
    check_hardware({"accelerator": "gpu", "devices": -1})
    check_hardware({"accelerator": "gpu", "devices": 2})


def test_requested_gpus():
    assert [requested_gpus(d) for d in (1, "2", "1,", "auto", None, -1)] == [
        1,
        2,
        1,
        None,
        None,
        None,
    ]


def test_fp16_on_the_cpu_is_refused_with_what_to_use_instead(monkeypatch, tmp_path):
    simulate_host(monkeypatch, tmp_path, gpus=0, bf16_cpu=True)
    with pytest.raises(ConfigError, match=r"trainer.precision=16-mixed: .*use precision=fp32"):
        check_hardware({"accelerator": "auto", "precision": "16-mixed"})


def test_bf16_on_a_gpu_without_bf16_is_refused(monkeypatch, tmp_path):
    simulate_host(monkeypatch, tmp_path, gpus=1, bf16_cpu=True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-32GB")
    with pytest.raises(ConfigError, match=r"Tesla V100-SXM2-32GB on n7 cannot compute in bf16"):
        check_hardware({"accelerator": "gpu", "precision": "bf16-mixed"}, host="n7")


@pytest.mark.parametrize("accelerator", ["cpu", "auto"])  # auto: hardware=auto, no GPU here
def test_bf16_on_a_cpu_without_native_bf16_runs_with_a_warning(
    monkeypatch, tmp_path, caplog, accelerator
):
    simulate_host(monkeypatch, tmp_path, gpus=0, bf16_cpu=False)
    with caplog.at_level(logging.WARNING, logger="ser.hardware"):
        check_hardware({"accelerator": accelerator, "precision": "bf16-mixed"})
    assert "emulated and slower than fp32" in caplog.text
    caplog.clear()
    simulate_host(monkeypatch, tmp_path, gpus=0, bf16_cpu=True)
    with caplog.at_level(logging.WARNING, logger="ser.hardware"):
        check_hardware({"accelerator": accelerator, "precision": "bf16-mixed"})
    assert not caplog.records


def test_the_device_record_is_what_the_trainer_had():
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="bf16-mixed", logger=False)
    record = device_record(trainer)
    assert record == {
        "device_kind": "cpu",
        "device_name": cpu_name(),
        "devices": 1,
        "precision": "bf16-mixed",
    }


def test_hardware_label_reads_old_and_new_records():
    old = {"environment": {"accelerator": "CPUAccelerator", "precision": "32-true"}}
    new = {"environment": {"device_kind": "cuda", "precision": "bf16-mixed"}}
    assert hardware_label(old) == "cpu 32-true"
    assert hardware_label(new) == "cuda bf16-mixed"
    assert hardware_label({}) == "unknown unknown"
