"""Checkpoint descriptions: segment policies and networks rebuild from their specs."""

import functools
import json

import torch

from ser.data.segments import FirstLast, PerClass, Sliding
from ser.models import ASRNN
from ser.module import net_spec
from ser.specs import from_spec


def test_nested_segment_policy_round_trips_through_json() -> None:
    policy = PerClass(default=FirstLast(), minority=Sliding(hop=50), minority_classes=["hap"])
    rebuilt = from_spec(json.loads(json.dumps(policy.spec())))
    assert isinstance(rebuilt, PerClass)
    assert isinstance(rebuilt.default, FirstLast) and rebuilt.minority.hop == 50
    assert rebuilt.minority_classes == ("hap",)
    frames, labels = [150, 420, 900], ["ang", "hap", "neu"]
    expected = policy.segment(frames, labels, length=300)
    got = rebuilt.segment(frames, labels, length=300)
    assert (got.start == expected.start).all() and (got.utterance == expected.utterance).all()


def test_network_spec_rebuilds_the_network_with_its_weights() -> None:
    factory = functools.partial(ASRNN, n_mels=16, frames=40, window=4, shift=2)
    torch.manual_seed(0)
    net = factory(num_classes=3).eval()
    rebuilt = from_spec(json.loads(json.dumps(net_spec(factory))), num_classes=3).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 40, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), net(x))
    assert rebuilt.window_starts() == net.window_starts() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
