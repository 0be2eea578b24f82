"""Utterance aggregation and UAR/WA/macro-F1 (ser.metrics)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from ser.metrics import (
    NonFiniteOutputError,
    SegmentUAR,
    UtteranceMetrics,
    accuracy,
    combine_segments,
    f1_per_class,
    macro_f1,
    uar,
)


def test_combine_max_and_mean_against_hand_computed_example():
    # utterance 0 has segments 0 and 2, utterance 1 has segment 1, utterance 2 has 3 and 4
    probs = torch.tensor(
        [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]]
    )
    seg_to_utt = torch.tensor([0, 1, 0, 2, 2])
    by_max = combine_segments(probs, seg_to_utt, 3, "max")
    # max rows: [0.7, 0.6, 0.3] / 1.6, [0.1, 0.1, 0.8], [0.5, 0.4, 0.4] / 1.3
    expected_max = torch.tensor([[0.7, 0.6, 0.3], [0.1, 0.1, 0.8], [0.5, 0.4, 0.4]])
    expected_max = expected_max / expected_max.sum(1, keepdim=True)
    torch.testing.assert_close(by_max, expected_max)
    by_mean = combine_segments(probs, seg_to_utt, 3, "mean")
    expected_mean = torch.tensor([[0.4, 0.4, 0.2], [0.1, 0.1, 0.8], [0.4, 0.35, 0.25]])
    torch.testing.assert_close(by_mean, expected_mean)
    # the decision differs between the rules for utterance 0: max -> class 0, mean -> tie 0/1
    assert by_max.argmax(1).tolist() == [0, 2, 0]


def test_combine_rejects_unknown_rule():
    with pytest.raises(ValueError, match="combine='median'"):
        combine_segments(torch.ones(1, 2), torch.zeros(1, dtype=torch.long), 1, "median")


@pytest.mark.parametrize("seed", range(6))
def test_uar_and_wa_match_sklearn_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    num_classes = 4
    y_true = rng.integers(0, num_classes, size=60)
    y_true[:num_classes] = np.arange(num_classes)  # every class occurs in the truth
    y_pred = rng.integers(0, num_classes, size=60)
    if seed % 2:  # a class absent from the predictions
        y_pred[y_pred == 2] = 1
        assert 2 not in y_pred
    conf = torch.from_numpy(confusion_matrix(y_true, y_pred, labels=range(num_classes)))
    assert uar(conf).item() == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert accuracy(conf).item() == pytest.approx(accuracy_score(y_true, y_pred))


def test_uar_ignores_classes_absent_from_the_truth():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 2, 1, 1, 0])
    conf = torch.from_numpy(confusion_matrix(y_true, y_pred, labels=range(3)))
    expected = recall_score(y_true, y_pred, average="macro", labels=[0, 1])
    assert uar(conf).item() == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(8))
def test_macro_f1_matches_sklearn_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    num_classes = 5
    y_true = rng.integers(0, num_classes, size=50)
    y_pred = rng.integers(0, num_classes, size=50)
    if seed % 2:  # a class predicted but absent from the truth
        y_true[y_true == 3] = 0
        y_pred[0] = 3
    if seed % 4 >= 2:  # a class absent from both
        y_true[y_true == 4] = 1
        y_pred[y_pred == 4] = 2
    conf = torch.from_numpy(confusion_matrix(y_true, y_pred, labels=range(num_classes)))
    # sklearn's default labels: those of the truth or the predictions
    expected = f1_score(y_true, y_pred, average="macro")
    assert macro_f1(conf).item() == pytest.approx(expected)


def test_macro_f1_against_a_hand_computed_confusion_matrix():
    # rows true, columns predicted; class 3 absent from truth and predictions, class 2 only
    # predicted (once, for a class-1 utterance)
    conf = torch.tensor([[4, 1, 0, 0], [2, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    # class 0: TP 4, FP 2, FN 1 -> 8/11; class 1: TP 2, FP 1, FN 3 -> 4/8; class 2: 0/1 -> 0
    per_class = f1_per_class(conf)
    assert per_class[:3].tolist() == pytest.approx([8 / 11, 1 / 2, 0.0])
    assert torch.isnan(per_class[3])
    assert macro_f1(conf).item() == pytest.approx((8 / 11 + 1 / 2 + 0.0) / 3)


def make_metric(combine="max"):
    # 3 utterances (labels 0, 1, 1); segments 0,1 -> utt 0, 2 -> utt 1, 3,4 -> utt 2
    return UtteranceMetrics(
        seg_to_utt=torch.tensor([0, 0, 1, 2, 2]),
        labels=torch.tensor([0, 1, 1]),
        num_classes=2,
        combine=combine,
    )


def test_utterance_metrics_end_to_end():
    metric = make_metric()
    metric.update(torch.tensor([0, 1, 2]), torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]]))
    metric.update(torch.tensor([3, 4]), torch.tensor([[0.8, 0.2], [0.55, 0.45]]))
    result = metric.compute()
    assert result["preds"].tolist() == [0, 1, 0]  # utt 2: max(0.8,0.55)=0.8 vs max(0.2,0.45)
    assert result["confusion"].tolist() == [[1, 0], [1, 1]]
    assert result["uar"].item() == pytest.approx(0.75)
    assert result["wa"].item() == pytest.approx(2 / 3)
    # class 0: TP 1, FP 1, FN 0 -> 2/3; class 1: TP 1, FP 0, FN 1 -> 2/3
    assert result["f1"].item() == pytest.approx(2 / 3)
    assert result["recall"].tolist() == pytest.approx([1.0, 0.5])
    # segment level: preds [0, 1, 1, 0, 0] vs labels [0, 0, 1, 1, 1]
    assert result["seg_uar"].item() == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_repeated_segments_do_not_count_twice_and_unseen_utterances_are_left_out():
    metric = make_metric()
    batch = (torch.tensor([2, 2, 3]), torch.tensor([[0.3, 0.7], [0.3, 0.7], [0.1, 0.9]]))
    metric.update(*batch)
    metric.update(*batch)  # a padded distributed sampler repeats samples
    result = metric.compute()
    assert result["utterances"].tolist() == [1, 2]
    assert result["confusion"].sum().item() == 2
    assert result["wa"].item() == 1.0


def test_reset_clears_the_state():
    metric = make_metric()
    metric.update(torch.tensor([0]), torch.tensor([[0.1, 0.9]]))
    metric.reset()
    metric.update(torch.tensor([2]), torch.tensor([[0.1, 0.9]]))
    assert metric.compute()["utterances"].reshape(-1).tolist() == [1]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_probabilities_are_refused_not_scored(value):
    metric = make_metric()
    metric.update(torch.tensor([0, 1, 2]), torch.tensor([[0.9, 0.1], [value, 0.6], [0.3, 0.7]]))
    with pytest.raises(NonFiniteOutputError, match="1 of 3 segments"):
        metric.compute()


@pytest.mark.parametrize("seed", range(3))
def test_segment_uar_over_several_steps_matches_sklearn(seed):
    generator = torch.Generator().manual_seed(seed)
    metric = SegmentUAR(num_classes=5)
    scores = torch.randn(60, 5, generator=generator)
    target = torch.randint(0, 4, (60,), generator=generator)  # class 4 never occurs
    for rows in torch.arange(60).split(16):  # batches of 16, 16, 16, 12
        metric.update(scores[rows], target[rows])
    expected = recall_score(target, scores.argmax(1), labels=range(4), average="macro")
    assert metric.compute().item() == pytest.approx(expected)
    assert metric.confusion.sum().item() == 60
    metric.reset()
    assert metric.confusion.sum().item() == 0
