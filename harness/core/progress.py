"""The one progress bar of the project: tqdm on stderr, or a silent stand-in; and the
time-weighted bar of ``glotbench run`` whose ETA weighs each request by its expected cost.

Why weights: a run mixes log-likelihood requests (one forward pass over a few dozen tokens)
with generations (a long prompt, then hundreds of decode steps). Counting requests, a
768-token MGSM generation looks like one XCOPA choice and the ETA is wrong by an order of
magnitude. :class:`WorkEta` keeps, per request kind, the remaining weight (expected cost in
units the caller chooses, e.g. forward-token equivalents) and the seconds observed per unit
so far; a kind not seen yet is priced at its prior rate scaled by how fast the machine has
run the kinds that were seen.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence


class _Silent:
    """What a disabled bar is: the same calls, doing nothing (tqdm is not even imported)."""

    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: float, desc: str, unit: str, enabled: bool = True, *, unit_scale: bool = False,
                 leave: bool = True, bar_format: str | None = None):
    """A progress bar over ``total`` units on stderr (``update(n)``, ``close()``)."""
    if not enabled:
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=leave, file=sys.stderr,
                dynamic_ncols=True, bar_format=bar_format)


class WorkEta:
    """Seconds left of a mix of work kinds, each weighed by its expected cost.

    ``remaining``: kind → total weight still to do; ``prior``: kind → expected seconds per
    weight unit before anything is observed (only their ratios matter once one kind has run).
    ``clock`` is injectable so tests need no real time."""

    def __init__(self, remaining: Mapping[str, float], prior: Mapping[str, float],
                 clock: Callable[[], float] = time.monotonic):
        missing = sorted(set(remaining) - set(prior))
        if missing:
            raise ValueError(f"no prior seconds per unit for work kinds {missing}")
        self.remaining = dict(remaining)
        self.prior = dict(prior)
        self.clock = clock
        self.seconds = {k: 0.0 for k in self.prior}
        self.weight = {k: 0.0 for k in self.prior}
        self._mark = clock()

    def mark(self) -> None:
        """Start timing the next piece of work now."""
        self._mark = self.clock()

    def skip(self, kind: str, weight: float) -> None:
        """Work done at no cost (answers from the cache): off the remainder, not timed."""
        self.remaining[kind] = max(0.0, self.remaining.get(kind, 0.0) - weight)
        self.mark()

    def done(self, kind: str, weight: float) -> None:
        """Work of ``weight`` units finished, timed from the last mark."""
        now = self.clock()
        self.seconds[kind] += max(0.0, now - self._mark)
        self.weight[kind] += weight
        self.remaining[kind] = max(0.0, self.remaining.get(kind, 0.0) - weight)
        self._mark = now

    def rate(self, kind: str) -> float | None:
        """Seconds per unit of ``kind``: observed if it ran, else its prior scaled by the
        machine's observed speed on the other kinds; None before anything ran."""
        if self.weight[kind] > 0:
            return self.seconds[kind] / self.weight[kind]
        expected = sum(self.weight[k] * self.prior[k] for k in self.prior)
        if expected <= 0:
            return None
        return self.prior[kind] * sum(self.seconds.values()) / expected

    def seconds_left(self) -> float | None:
        """The ETA in seconds (None until some work has been timed)."""
        total = 0.0
        for kind, left in self.remaining.items():
            if left <= 0:
                continue
            rate = self.rate(kind)
            if rate is None:
                return None
            total += left * rate
        return total


def format_seconds(seconds: float | None) -> str:
    """``754.2`` → ``12:34``; over an hour ``1:02:03``; None → ``?``."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


class WorkBar:
    """A progress bar over the expected cost of requests, with :class:`WorkEta`'s ETA.

    The bar fills by weight (share of the expected time); its text counts requests and shows
    the time-weighted ETA. ``update(n, keys=..., cached=...)`` takes the keys of the ``n``
    requests just answered (duplicates included) so each is weighed and timed by its kind."""

    def __init__(self, weights: Mapping[str, float], kinds: Mapping[str, str], keys: Sequence[str],
                 prior: Mapping[str, float], enabled: bool = True, desc: str = "requests",
                 clock: Callable[[], float] = time.monotonic):
        self.weights, self.kinds = weights, kinds
        remaining: dict[str, float] = {k: 0.0 for k in prior}
        for key in keys:
            remaining[kinds[key]] = remaining.get(kinds[key], 0.0) + weights[key]
        self.eta = WorkEta(remaining, prior, clock)
        self.total_requests, self.done_requests = len(keys), 0
        self.clock, self.started = clock, clock()
        self.bar = progress_bar(sum(remaining.values()), desc, "u", enabled, bar_format=self._format())

    def update(self, n: float = 1, *, keys: Sequence[str] = (), cached: bool = False) -> None:
        by_kind: dict[str, float] = {}
        for key in keys:
            by_kind[self.kinds[key]] = by_kind.get(self.kinds[key], 0.0) + self.weights[key]
        if not by_kind:
            self.eta.mark()
        for kind, weight in by_kind.items():
            (self.eta.skip if cached else self.eta.done)(kind, weight)
        self.done_requests += int(n)
        if not isinstance(self.bar, _Silent):
            self.bar.bar_format = self._format()
        self.bar.update(sum(by_kind.values()))

    def status(self) -> str:
        """``"120/500 req, 01:10 elapsed, ETA 04:20"``: what the bar's text says."""
        return (f"{self.done_requests}/{self.total_requests} req, "
                f"{format_seconds(self.clock() - self.started)} elapsed, ETA {format_seconds(self.eta.seconds_left())}")

    def _format(self) -> str:
        # The bar fills by expected time; the text is ours (tqdm's own rate and ETA count units
        # evenly over the run and would contradict it).
        return "{desc}: {percentage:3.0f}%|{bar}| " + self.status()

    def close(self) -> None:
        self.bar.close()
