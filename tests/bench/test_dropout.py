"""bench/dropout.py times the dropout it says it times."""

import importlib.util
import sys
from pathlib import Path

import pytest
from torch import nn

from ser.models.blocks import FastDropout

BENCH = Path(__file__).resolve().parents[2] / "bench"
spec = importlib.util.spec_from_file_location("dropout_bench", BENCH / "dropout.py")
bench = sys.modules["dropout_bench"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("dropout", [nn.Dropout, FastDropout])
def test_the_timed_network_has_the_chosen_dropout_in_its_front_at_adsrnn_s_rate(dropout):
    net = bench.adsrnn_with("small", dropout)
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout | FastDropout)]
    assert [type(m) for m in dropouts] == [dropout]
    assert dropouts[0].p == bench.ADSRNN().front[4].p
