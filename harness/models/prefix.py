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
    nested: bool = False
    """Several sub-groups behind one long common prefix (a few-shot block followed by
    questions): scored through the prefix's key/value cache, sub-groups laid out once each."""

# A common prefix at least this long is worth a key/value-cache pass of its own even when
# the sequences behind it differ early (few-shot blocks are hundreds of tokens).
MIN_NESTED_PREFIX = 32


def common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_groups(seqs: list[Sequence], nest: bool = True) -> list[Group]:
    """Group sequences that share a token prefix worth computing once.

    Sequences are sorted lexicographically so that sharers are adjacent; a sequence joins
    the open group when the shared length ``s'`` it leaves is positive and at least the
    work it adds back, ``(s - s') * members`` (the tokens every member must now recompute).
    With ``nest``, adjacent groups whose first members share at least
    ``MIN_NESTED_PREFIX`` tokens are then merged into one nested group: its common prefix is
    computed once and each former group keeps its own longer prefix (see :func:`plan_calls`).
    The plan depends only on the set of sequences, never on a batch size.
    """
    fine = _plan_fine(seqs)
    if not nest:
        return fine
    out: list[Group] = []
    for g in fine:
        if out:
            last = out[-1]
            head = seqs[last.members[0]].tokens
            # Exact common prefix of every member with the open group's first sequence.
            common = min(min(common_prefix(head, seqs[m].tokens), len(seqs[m].tokens) - 1) for m in g.members)
            if len(last.members) > 1:
                common = min(common, last.shared)
            if common >= MIN_NESTED_PREFIX:
                out[-1] = Group(last.members + g.members, common, nested=True)
                continue
        out.append(g)
    return out


def _plan_fine(seqs: list[Sequence]) -> list[Group]:
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
    shared: int | None = None
    """Set in calls against a cached prefix: the members' own common prefix (at least the
    cached length), whose tokens past the cache are laid out once for the block. Two-level
    sharing: a subject's five-shot block in the cache, one question's text per block."""


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
        if not g.nested and len(g.members) <= max_requests and (c <= row_tokens or not g.shared):
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
        # Big group: its prefix computed once into the key/value cache; members that share
        # more than that (the choices of one question) form sub-blocks laid out once each.
        base = cached_shared(seqs, g)
        blocks: list[Block] = []
        open_members: list[int] = []
        n_used = n_req = 0
        # Grouped on what follows the cached prefix (on whole sequences every member would
        # share the cached part and fall into one group again).
        rest = [Sequence(seqs[m].tokens[base:], seqs[m].n_context - base) for m in g.members]
        for sub in plan_groups(rest, nest=False):
            shared = base + sub.shared
            for m in (g.members[i] for i in sub.members):
                n = suffix_len(seqs[m], shared) + (0 if open_members else shared - base)
                if (blocks or open_members) and (n_used + n > row_tokens or n_req == max_requests):
                    if open_members:
                        blocks.append(Block(gi, tuple(open_members), shared))
                    calls.append(Call((tuple(blocks),), cached_prefix=gi))
                    blocks, open_members, n_used, n_req = [], [], 0, 0
                    n = suffix_len(seqs[m], shared) + shared - base
                open_members.append(m)
                n_used += n
                n_req += 1
            blocks.append(Block(gi, tuple(open_members), shared))
            open_members = []
        calls.append(Call((tuple(blocks),), cached_prefix=gi))
    flush()
    return calls


# ---- generation ---------------------------------------------------------------------
@dataclass(frozen=True)
class GenPlan:
    """How generation requests share prompt prefixes and which are decoded together."""

    group: tuple[int, ...]
    """Per prompt: its group (prompts of one group share one cached prefix), -1 for none."""
    shared: tuple[int, ...]
    """Per prompt: leading tokens taken from its group's cached prefix (0: run whole)."""
    batches: tuple[tuple[int, ...], ...]
    """Prompt indices decoded together. A batch may mix groups (small groups fill a batch
    together: on CPU a decode step costs about the same for 1 row as for 16)."""


def plan_generation(prompts: list[tuple[int, ...]], batch_size: int,
                    min_shared: int = MIN_NESTED_PREFIX) -> GenPlan:
    """Plan generation: prompts sharing a token prefix of at least ``min_shared`` tokens
    (one language's few-shot block) form a group whose prefix is computed once; only the
    suffixes are fed per batch.

    Groups are found as for log-likelihoods (:func:`plan_groups` without nesting: a prompt
    joins the open group while the prefix it leaves saves more than it costs). A prefix
    stops at least one token before the end of every member, whose last prompt token must
    be fed to get the first generated token's logits. Batches take groups by prefix length
    and members by suffix length, longest first (little padding; an out-of-memory error
    shows at once), then the ungrouped prompts by length. The plan depends only on the
    prompts and the batch size; every prompt is in exactly one batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    seqs = [Sequence(tuple(p), len(p)) for p in prompts]
    group, shared = [-1] * len(prompts), [0] * len(prompts)
    kept = [g for g in _plan_fine(seqs) if len(g.members) > 1 and g.shared >= min_shared]
    kept.sort(key=lambda g: (-g.shared, g.members[0]))
    order: list[int] = []
    for gi, g in enumerate(kept):
        for m in g.members:
            group[m], shared[m] = gi, g.shared
        order += sorted(g.members, key=lambda m: (-len(prompts[m]), m))
    order += sorted((i for i in range(len(prompts)) if group[i] < 0), key=lambda m: (-len(prompts[m]), m))
    batches = tuple(tuple(order[i:i + batch_size]) for i in range(0, len(order), batch_size))
    return GenPlan(tuple(group), tuple(shared), batches)
