"""Plan shared-prefix scoring: which log-likelihood requests share a key/value cache.

Requests that share a token prefix (the two XCOPA choices after one premise, the two
XWinograd fillers after one sentence start, a few-shot block shared by every question of a
subject) are scored by computing the prefix once and running only the suffixes. Pure
functions on token ids, so the plan is unit-testable without a model.

A shared prefix may run into the continuations (XCOPA choices often start alike): those
positions are scored from the prefix's own logits, which are the same for every member.
A prefix reused through the key/value cache instead (big groups) stops one token before
every member's first scored position, so that pass never needs logits.
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
        cap = len(seq.tokens) - 1  # every fed token (the last one is only a target)
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


@dataclass(frozen=True)
class Block:
    """Some members of one group laid out in a packed row: ``[prefix][suffix 1][suffix 2]...``."""

    group: int
    members: tuple[int, ...]


@dataclass(frozen=True)
class Call:
    """One forward pass: rows of packed blocks, right-padded to a common width.

    ``cached_prefix`` names a group whose shared prefix is *not* in the rows but computed
    once beforehand and attended to through the key/value cache (big groups: a few-shot
    block shared by more questions than fit in one call).
    """

    rows: tuple[tuple[Block, ...], ...]
    cached_prefix: int | None = None


def cached_shared(seqs: list[Sequence], group: Group) -> int:
    """The part of a group's prefix reused through the KV cache: it must end before the
    first scored position of every member, since the cached pass keeps no logits."""
    return min(group.shared, *(seqs[m].n_context - 1 for m in group.members))


def suffix_len(seq: Sequence, shared: int) -> int:
    """Tokens a member feeds after the shared prefix (its last token is only a target)."""
    return len(seq.tokens) - 1 - shared


def plan_calls(seqs: list[Sequence], groups: list[Group], *, row_tokens: int, max_rows: int,
               max_requests: int) -> list[Call]:
    """Pack groups into rows of about ``row_tokens`` tokens and rows into forward passes of at
    most ``max_rows`` rows and ``max_requests`` scored requests, largest groups first (so an
    out-of-memory error comes at the start, and rows of one call have similar widths).

    A group that fits in a row and in a call is packed whole, prefix included. A larger one
    gets its prefix computed once and its members' suffixes packed into calls of its own.
    A single sequence longer than ``row_tokens`` still gets a row (of its own).
    """
    def cost(g: Group) -> int:
        return g.shared + sum(suffix_len(seqs[m], g.shared) for m in g.members)

    order = sorted(range(len(groups)), key=lambda i: (-cost(groups[i]), groups[i].members[0]))
    calls: list[Call] = []
    rows: list[list[Block]] = []
    used = requests = 0  # tokens in the open row; requests in the open call

    def flush() -> None:
        nonlocal rows, requests, used
        if rows:
            calls.append(Call(tuple(tuple(r) for r in rows)))
        rows, requests, used = [], 0, 0

    for gi in order:
        g = groups[gi]
        c = cost(g)
        if len(g.members) <= max_requests and (c <= row_tokens or not g.shared):
            if requests + len(g.members) > max_requests:
                flush()
            if not rows or used + c > row_tokens:
                if len(rows) == max_rows:
                    flush()
                rows.append([])
                used = 0
            rows[-1].append(Block(gi, g.members))
            used += c
            requests += len(g.members)
            continue
        # Big group: suffixes only, against the prefix's key/value cache.
        shared = cached_shared(seqs, g)
        chunk: list[int] = []
        n_used = 0
        for m in g.members:
            n = suffix_len(seqs[m], shared)
            if chunk and (n_used + n > row_tokens or len(chunk) == max_requests):
                calls.append(Call(((Block(gi, tuple(chunk)),),), cached_prefix=gi))
                chunk, n_used = [], 0
            chunk.append(m)
            n_used += n
        calls.append(Call(((Block(gi, tuple(chunk)),),), cached_prefix=gi))
    flush()
    return calls
