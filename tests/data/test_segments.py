"""Segmenting utterances into fixed-length windows (ser/data/segments.py; SEED.md).

SEED.md: segments of 300 frames; T <= 300 gives one zero-padded segment; longer utterances
give the first and last 300 frames, or (minority class, training) every 300-frame window
with a hop of 100 frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from ser.data.segments import FirstLast, PerClass, SegmentTable, Sliding
from ser.errors import ConfigError

L = 300  # SEED.md: 3 s
HOP = 100  # SEED.md: the minority class' window hop (1 s of 10 ms frames)
HOP_S = HOP / 100


def rows(table: SegmentTable) -> list[tuple[int, int, int]]:
    return list(
        zip(table.utterance.tolist(), table.start.tolist(), table.valid.tolist(), strict=True)
    )


@pytest.mark.parametrize("policy", [FirstLast(), Sliding(hop_s=HOP_S)])
def test_short_and_exact_utterances_give_one_segment(policy):
    table = policy.segment([1, 120, 299, 300], ["a"] * 4, length=L)
    # one segment from frame 0; frames past T are padding (valid = T)
    assert rows(table) == [(0, 0, 1), (1, 0, 120), (2, 0, 299), (3, 0, 300)]


def test_first_last_of_long_utterances():
    table = FirstLast().segment([301, 450, 1000], ["a"] * 3, length=L)
    assert rows(table) == [
        (0, 0, 300), (0, 1, 300),
        (1, 0, 300), (1, 150, 300),
        (2, 0, 300), (2, 700, 300),
    ]  # fmt: skip


def test_sliding_windows_with_an_end_aligned_last_window():
    table = Sliding(hop_s=HOP_S).segment([301, 450, 500, 620], ["a"] * 4, length=L)
    starts = {u: [s for uu, s, _ in rows(table) if uu == u] for u in range(4)}
    assert starts[0] == [0, 1]  # 0, then the window ending at frame 301
    assert starts[1] == [0, 100, 150]  # 200 would run past the end: end-aligned 150
    assert starts[2] == [0, 100, 200]  # 200 ends exactly at 500: no extra window
    assert starts[3] == [0, 100, 200, 300, 320]
    assert set(table.valid.tolist()) == {L}
    # full coverage: the last window ends at the last frame
    assert [max(s) + L for s in starts.values()] == [301, 450, 500, 620]


def test_sliding_hop_must_be_positive():
    with pytest.raises(ConfigError, match=r"Sliding\(hop_s=0\).*datamodule\.train_segments"):
        Sliding(hop_s=0)


def test_segments_come_in_utterance_order_and_index_the_input():
    frames = [450, 120, 800]
    table = FirstLast().segment(frames, ["a", "b", "c"], length=L)
    assert table.utterance.tolist() == [0, 0, 1, 2, 2]
    assert table.utterance.dtype == np.int64 and table.start.dtype == np.int64
    ends = table.start + table.valid
    assert (ends <= np.asarray(frames)[table.utterance]).all()


def test_per_class_minority_is_the_class_with_fewest_utterances():
    labels = ["neu", "hap", "neu", "sad", "neu", "sad", "ang", "ang", "hap", "hap", "hap"]
    # ang has 2 utterances (fewest)
    frames = [450] * len(labels)
    policy = PerClass(default=FirstLast(), minority=Sliding(hop_s=HOP_S))
    assert policy.resolve_minority(labels) == ("ang",)
    table = policy.segment(frames, labels, length=L)
    per_utt = {u: table.start[table.utterance == u].tolist() for u in range(len(labels))}
    for u, label in enumerate(labels):
        assert per_utt[u] == ([0, 100, 150] if label == "ang" else [0, 150]), (u, label)


def test_per_class_minority_depends_on_the_labels_being_segmented():
    policy = PerClass(default=FirstLast(), minority=Sliding(hop_s=HOP_S))
    assert policy.resolve_minority(["hap", "sad", "sad"]) == ("hap",)
    assert policy.resolve_minority(["hap", "hap", "sad"]) == ("sad",)


def test_per_class_explicit_minority_classes():
    labels = ["neu", "hap", "sad", "ang"]
    policy = PerClass(
        default=FirstLast(), minority=Sliding(hop_s=HOP_S), minority_classes=["hap", "sad"]
    )
    assert policy.resolve_minority(labels) == ("hap", "sad")
    table = policy.segment([620, 620, 620, 250], labels, length=L)
    per_utt = [table.start[table.utterance == u].tolist() for u in range(4)]
    assert per_utt == [[0, 320], [0, 100, 200, 300, 320], [0, 100, 200, 300, 320], [0]]
    assert table.valid[table.utterance == 3].tolist() == [250]


def test_short_minority_utterance_is_still_one_padded_segment():
    policy = PerClass(default=FirstLast(), minority=Sliding(hop_s=HOP_S))
    table = policy.segment([200, 450, 450], ["hap", "neu", "neu"], length=L)
    assert rows(table)[0] == (0, 0, 200)


def test_other_segment_length():
    table = FirstLast().segment([150], ["a"], length=100)
    assert rows(table) == [(0, 0, 100), (0, 50, 100)]


def test_an_utterance_without_frames_is_an_error():
    with pytest.raises(ValueError, match="utterance 1"):
        FirstLast().segment([10, 0], ["a", "b"], length=L)


def test_subset_keeps_the_chosen_rows_in_order():
    table = FirstLast().segment([450, 120, 800], ["a"] * 3, length=L)
    sub = table.subset(np.array([4, 0, 2]))
    assert rows(sub) == [rows(table)[4], rows(table)[0], rows(table)[2]]
