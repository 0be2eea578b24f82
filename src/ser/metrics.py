"""Utterance-level metrics: segment probabilities combined per utterance, then UAR, WA and
macro-F1.

SEED.md's decision rule: the class probabilities of an utterance's segments are combined
element-wise by **max** (or **mean**), then argmax. UAR is the mean of per-class recalls over
the classes present in the ground truth (= scikit-learn's ``recall_score(average="macro")``
when every class occurs); WA is plain accuracy; macro-F1 (the MSP-Podcast challenge's metric)
is the mean of per-class F1 over the classes present in the ground truth or the predictions
(= scikit-learn's ``f1_score(average="macro")``). All three come from the utterance-level
confusion matrix.

:class:`UtteranceMetrics` keeps one probability row per segment, indexed by the segment's
position in its split. Rows are merged across processes with ``max``: a segment that a
distributed sampler repeats to pad a batch writes the same row twice, and one never seen
stays empty, so no utterance is counted twice or lost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

COMBINE = ("max", "mean")


class NonFiniteOutputError(RuntimeError):
    """The network gave NaN or infinite probabilities: no score is computed from them."""


def combine_segments(
    seg_probs: Tensor, seg_to_utt: Tensor, num_utterances: int, how: str
) -> Tensor:
    """Combine per-segment probabilities ``(S, C)`` into per-utterance ones ``(U, C)``.

    Rows are renormalised to sum to 1 (the argmax is unchanged). Utterances without any
    segment get a row of zeros.

    Example:
        >>> p = torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])
        >>> combine_segments(p, torch.tensor([0, 0, 1]), 2, "max")
        tensor([[0.4286, 0.5714],
                [0.9000, 0.1000]])
    """
    if how not in COMBINE:
        raise ValueError(f"combine={how!r}: choose one of {COMBINE}")
    index = seg_to_utt[:, None].expand_as(seg_probs)
    out = seg_probs.new_zeros(num_utterances, seg_probs.shape[1])
    if how == "max":
        out = out.scatter_reduce(0, index, seg_probs, reduce="amax", include_self=True)
    else:
        out = out.scatter_reduce(0, index, seg_probs, reduce="mean", include_self=False)
    total = out.sum(dim=1, keepdim=True)
    return torch.where(total > 0, out / total.clamp_min(1e-12), out)


def confusion_matrix(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Counts ``(C, C)`` of true class (rows) against predicted class (columns).

    A one-hot sum: torch.bincount (torchmetrics' confusion matrix) reads its maximum back to
    the host on CUDA, a sync at every call.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
        tensor([[1, 1],
                [0, 1]])
    """
    cells = target * num_classes + preds
    return F.one_hot(cells, num_classes**2).sum(dim=0).view(num_classes, num_classes)


def recall_per_class(confusion: Tensor) -> Tensor:
    """Recall of each class from a confusion matrix (rows true); NaN for absent classes."""
    support = confusion.sum(dim=1)
    return torch.where(support > 0, confusion.diagonal() / support.clamp_min(1), torch.nan)


def uar(confusion: Tensor) -> Tensor:
    """Unweighted average recall over the classes present in the ground truth."""
    return recall_per_class(confusion.float()).nanmean()


def f1_per_class(confusion: Tensor) -> Tensor:
    """F1 of each class, ``2 TP / (2 TP + FP + FN)``, from a confusion matrix (rows true).

    NaN for a class absent from both the ground truth and the predictions (its F1 is 0 / 0);
    a class that is predicted but never true, or true but never predicted, scores 0.
    """
    confusion = confusion.float()
    true_positives = confusion.diagonal()
    # (TP + FN) + (TP + FP) = 2 TP + FP + FN
    denominator = confusion.sum(dim=1) + confusion.sum(dim=0)
    return torch.where(denominator > 0, 2 * true_positives / denominator.clamp_min(1), torch.nan)


def macro_f1(confusion: Tensor) -> Tensor:
    """Macro-F1: the unweighted mean of the per-class F1 (:func:`f1_per_class`) over the
    classes present in the ground truth **or** the predictions.

    A class absent from both is left out of the mean, as UAR leaves out the classes absent
    from the ground truth; unlike UAR, a class predicted for some utterance but absent from
    the ground truth stays in, with F1 0 (its false positives are the only errors F1 sees
    for it). This is scikit-learn's ``f1_score(average="macro")`` with its default labels
    (those of the truth and the predictions).

    Example:
        >>> macro_f1(torch.tensor([[2, 1, 0], [0, 1, 0], [0, 0, 0]]))  # class 2 absent
        tensor(0.7333)
    """
    return f1_per_class(confusion).nanmean()


def accuracy(confusion: Tensor) -> Tensor:
    """Weighted accuracy (plain accuracy)."""
    return confusion.diagonal().sum() / confusion.sum().clamp_min(1)


class SegmentUAR(Metric):
    """UAR of segment predictions accumulated over steps (the training split's diagnosis).

    Counted with :func:`confusion_matrix`: no host sync in the training step.

    Example:
        >>> metric = SegmentUAR(num_classes=3)
        >>> metric.update(torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]]), torch.tensor([0, 0]))
        >>> metric.update(torch.tensor([[0.1, 0.8, 0.1]]), torch.tensor([1]))
        >>> metric.compute()  # class 0: 1 of 2, class 1: 1 of 1, class 2: absent
        tensor(0.7500)
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, *, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long), "sum")

    def update(self, scores: Tensor, target: Tensor) -> None:
        """Count segments with class scores ``(B, C)`` and true classes ``target`` ``(B,)``."""
        self.confusion += confusion_matrix(scores.argmax(dim=1), target, self.num_classes)

    def compute(self) -> Tensor:
        """UAR over the classes present in the targets so far."""
        return uar(self.confusion)


class UtteranceMetrics(Metric):
    """UAR, WA, macro-F1, per-class recall and confusion of one split, at utterance level.

    Args:
        seg_to_utt: utterance index of every segment of the split.
        labels: class index of every utterance of the split.
        num_classes: number of classes.
        combine: ``max`` (SEED.md) or ``mean``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self, *, seg_to_utt: Tensor, labels: Tensor, num_classes: int, combine: str = "max"
    ) -> None:
        super().__init__()
        if combine not in COMBINE:
            raise ValueError(f"combine={combine!r}: choose one of {COMBINE}")
        self.num_classes = num_classes
        self.combine = combine
        self.register_buffer("seg_to_utt", seg_to_utt.long(), persistent=False)
        self.register_buffer("labels", labels.long(), persistent=False)
        num_segments = len(seg_to_utt)
        self.add_state("seg_probs", torch.zeros(num_segments, num_classes), dist_reduce_fx="max")
        self.add_state("seen", torch.zeros(num_segments), dist_reduce_fx="max")

    def update(self, seg: Tensor, probs: Tensor) -> None:
        """Record the probabilities ``(B, C)`` of segments ``seg`` ``(B,)``."""
        self.seg_probs[seg] = probs.detach().to(self.seg_probs.dtype)
        self.seen[seg] = 1.0

    def compute(self) -> dict[str, Tensor]:
        """Metrics over the utterances with at least one recorded segment.

        Returns a dict with ``uar``, ``wa``, ``f1`` (macro-F1, :func:`macro_f1`),
        ``recall`` ``(C,)``, ``confusion`` ``(C, C)``
        (rows true, columns predicted), ``seg_uar`` (segment-level UAR, for diagnosis),
        ``utterances`` (indices into the split), ``probs`` ``(U, C)`` and ``preds`` ``(U,)``.
        (torchmetrics squeezes one-element results: reshape ``utterances`` and ``preds`` with
        ``.reshape(-1)`` before iterating.)
        """
        num_utt = len(self.labels)
        seen = self.seen > 0
        seg_probs, seg_utt = self.seg_probs[seen], self.seg_to_utt[seen]
        finite = torch.isfinite(seg_probs).all(dim=1)
        if not bool(finite.all()):  # one host sync per evaluation, not per step
            raise NonFiniteOutputError(
                f"{int((~finite).sum())} of {len(finite)} segments got NaN or infinite "
                "probabilities from the network: its weights or inputs are not finite, so no "
                "UAR is computed (an argmax over NaN would silently pick the first class)"
            )
        utt_probs = combine_segments(seg_probs, seg_utt, num_utt, self.combine)
        covered = torch.zeros(num_utt, dtype=torch.bool, device=seen.device)
        covered[seg_utt] = True
        utterances = covered.nonzero().squeeze(1)
        preds = utt_probs[utterances].argmax(dim=1)
        target = self.labels[utterances]
        confusion = confusion_matrix(preds, target, self.num_classes)
        seg_confusion = confusion_matrix(
            seg_probs.argmax(dim=1), self.labels[seg_utt], self.num_classes
        )
        return {
            "uar": uar(confusion),
            "wa": accuracy(confusion),
            "f1": macro_f1(confusion),
            "recall": recall_per_class(confusion.float()),
            "confusion": confusion,
            "seg_uar": uar(seg_confusion),
            "utterances": utterances,
            "probs": utt_probs[utterances],
            "preds": preds,
        }
