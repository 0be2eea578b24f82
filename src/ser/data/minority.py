"""Which classes a fold's training split segments as minority classes (a :class:`PerClass`
training policy): fixed by the config, or the class with the fewest training utterances."""

from __future__ import annotations

import logging
from collections import Counter

from ser.data.corpora import Corpus
from ser.data.segments import PerClass, SegmentPolicy
from ser.errors import CorpusError

log = logging.getLogger(__name__)


def fixed_minority(policy: SegmentPolicy, corpus: Corpus) -> tuple[tuple[str, ...] | None, str]:
    """Minority classes fixed by the config, and the option that fixed them: the policy's
    ``minority_classes``, else the corpus's (``data.minority_classes``).

    ``(None, "")`` when nothing fixes them (the automatic choice) or the policy is not
    :class:`PerClass`. A class outside the corpus's classes is refused, naming the option.
    """
    if not isinstance(policy, PerClass):
        return None, ""
    if policy.minority_classes is not None:
        chosen, source = policy.minority_classes, "datamodule.train_segments.minority_classes"
    elif corpus.minority_classes is not None:
        chosen, source = tuple(corpus.minority_classes), "data.minority_classes"
    else:
        return None, ""
    unknown = [c for c in chosen if c not in corpus.classes]
    if unknown:
        raise CorpusError(
            f"{source}={list(chosen)}: {unknown} not among the classes of "
            f"{corpus.name} {list(corpus.classes)}; name classes of data.classes, or set "
            f"{source}=null for the automatic choice (the class with the fewest training "
            "utterances)"
        )
    return chosen, source


def fold_policy(
    policy: SegmentPolicy, corpus: Corpus, fold: int, labels: list[str]
) -> tuple[SegmentPolicy, tuple[str, ...] | None]:
    """The training policy with the fold's minority classes settled (``labels``: those of its
    training utterances), and those classes (``None``: not a :class:`PerClass` policy).
    The choice is logged with the classes' utterance counts."""
    if not isinstance(policy, PerClass):
        return policy, None
    counts = Counter(labels)
    chosen, source = fixed_minority(policy, corpus)
    if chosen is None:
        chosen = policy.resolve_minority(labels)
        how = "chosen automatically (the fewest training utterances)"
    else:
        how = f"fixed by {source}"
    log.info(
        "%s fold %d: minority class(es) %s %s; their training segments: %r",
        corpus.name, fold,
        ", ".join(f"{c} ({counts[c]} training utterances)" for c in chosen), how,
        policy.minority,
    )  # fmt: skip
    settled = PerClass(default=policy.default, minority=policy.minority, minority_classes=chosen)
    return settled, chosen
