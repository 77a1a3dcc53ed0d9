"""Plan shared-prefix scoring: which log-likelihood requests share a key/value cache.

Requests that share a token prefix (the two XCOPA choices after one premise, the two
XWinograd fillers after one sentence start, a few-shot block shared by every question of a
subject) are scored by computing the prefix once and running only the suffixes. Pure
functions on token ids, so the plan is unit-testable without a model.

The shared prefix of a group always stops at least one token before every member's first
continuation token: the logit that predicts that token comes from the member's own
suffix pass, so the prefix pass never needs logits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sequence:
    """A tokenised request: ``tokens = context + continuation``, scored after ``n_context``."""

    tokens: tuple[int, ...]
    n_context: int


@dataclass(frozen=True)
class Group:
    members: tuple[int, ...]
    """Indices into the planned sequence list."""
    shared: int
    """Number of leading tokens computed once for all members (0: no sharing)."""


def common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_groups(seqs: list[Sequence]) -> list[Group]:
    """Group sequences that share a token prefix worth computing once.

    Sequences are sorted lexicographically so that sharers are adjacent; a sequence joins
    the open group when the shared length ``s'`` it leaves is positive and at least the
    work it adds back, ``(s - s') * members`` (the tokens every member must now recompute).
    The plan depends only on the set of sequences, never on a batch size.
    """
    order = sorted(range(len(seqs)), key=lambda i: (seqs[i].tokens, i))
    groups: list[tuple[list[int], int]] = []
    for i in order:
        seq = seqs[i]
        cap = max(seq.n_context - 1, 0)
        if groups:
            members, shared = groups[-1]
            first = seqs[members[0]].tokens
            new = min(shared, cap, common_prefix(first, seq.tokens))
            if new > 0 and new >= (shared - new) * len(members):
                members.append(i)
                groups[-1] = (members, new)
                continue
        groups.append(([i], cap))
    return [Group(tuple(m), s if len(m) > 1 else 0) for m, s in groups]


def plan_batches(seqs: list[Sequence], groups: list[Group], batch_size: int) -> list[list[Group]]:
    """Pack groups into batches of at most ``batch_size`` rows, longest first.

    A group larger than ``batch_size`` gets a batch of its own (the backend then runs its
    prefix once and its suffixes in chunks). Longest-first keeps padding low and makes an
    out-of-memory error happen at the start rather than the end.
    """
    def length(g: Group) -> int:
        return max(len(seqs[m].tokens) for m in g.members)

    ordered = sorted(groups, key=lambda g: (-length(g), g.members[0]))
    batches: list[list[Group]] = []
    rows = 0
    for g in ordered:
        n = len(g.members)
        if n > batch_size:
            batches.append([g])
            rows = batch_size  # closed
            continue
        if not batches or rows + n > batch_size:
            batches.append([])
            rows = 0
        batches[-1].append(g)
        rows += n
    return batches
