"""The market's pure core: which worker does a request, who checks it, whom to trust.

No threads, sockets or clocks live here: every call takes ``now`` (seconds on any clock),
so the broker drives this code on wall-clock time and ``bench/market_sim.py`` drives the
very same code on a virtual clock over a thousand simulated nodes.  The market is not
thread-safe; the broker serialises calls with one lock.

The scoring rule (documented in ``Market.score``): for a request of kind *k* and each
eligible worker *w* (offers every function the request uses, not shut out, not down),

    score(w) = L(w, k) * (1 + in_flight(w) / capacity(w))   # expected time to finish
               * (1 + verify_cost * p_verify(w))             # checks we expect to pay for
               + price_weight * price(w)                     # the worker's bid

and the lowest score wins.  ``L(w, k)`` is a Thompson sample of the worker's latency
for that kind: log-latency is modelled as normal, its mean a moving (exponentially
weighted) estimate per worker and per kind, shrunk toward a prior (the kind's global
estimate shifted by the worker's observed speed ratio, else the worker's own bid, else a
default), and its spread narrows with observations but widens again with the time since
the worker was last observed, so a worker that became fast is found again.

Trust follows BOINC's adaptive replication.  A request is replicated on an independent
second worker with probability ``p_verify(w)``: 1 for a worker without a streak of
``trust_streak`` consecutive agreeing checks, then ``(trust_streak / streak)**2``, down to
``verify_floor``; 1 during probation; 0 for an oracle.  The checker is a free oracle node,
else a proven worker (by score), else an oracle with a short queue, else a stranger
picked at random (so that a fast liar cannot attract the checks of its accomplices).
Votes are weighed by reputation earned from checked work, never by headcount: a new
identity weighs 0 (it is on probation until ``establish_after`` of its answers agreed
with a verdict that had weight, or with the broker's own engine: ``confirmed``), an
established worker 1, a proven one 2; a verdict needs two backers weighing at least
``quorum`` (3) and more than any other answer; when results differ, or the weight is
short, another worker whose vote weighs something votes (up to ``max_votes``; a dispute
goes to an oracle however busy); an oracle's vote settles it.  New identities agreeing
with each other (Sybils) decide nothing: the verdict is then unverified
(``verified_by`` "none"), which the broker checks on its own engine for a pure program
and otherwise refuses (``Unverifiable``), and only a verdict with weight (or the
engine's) credits anyone.  A loser gets ``loss_weight`` losses against
it in ``reputation = (agreed + 1) / (agreed + 2 + loss_weight * lost)``; under
``shut_threshold`` (or losing at all on probation) it is shut out for
``shutout_seconds`` (doubling each time), then works on probation, every result checked
and never alone, until ``probation_length`` consecutive agreements bring it back.
A worker shut out while a request ran loses its vote in it.

Honesty and availability are kept apart.  Only two completed, different answers
disagree.  A timeout, a crash, a connection error or an Overloaded is an availability
failure: it raises the worker's ``unavailable`` penalty by one, which halves every
``unavailable_half_life`` seconds and multiplies its score by ``1 + unavailable_weight *
penalty`` (a transport failure also backs it off for a while); it never shuts anyone out.
A run that passes a limit (``Job.on_limit``) is no vote either: if another worker
completes it, the limited one takes the availability penalty; if every worker passes a
limit (a timeout gets ``timeout_retries`` fresh workers first), the verdict is the
program's LimitExceeded and nobody's reputation changes.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Iterable

ACTIVE, PROBATION, SHUT_OUT = "active", "probation", "shut_out"
DOWN = "down"          # shown in stats only: a transport failure, retried after a backoff


@dataclass
class Policy:
    """Every tunable of the market, with the defaults the tests and simulation use."""
    loss_weight: float = 20.0          # one lost vote weighs as much as 20 agreements
    shut_threshold: float = 0.5        # reputation under this after a loss: shut out
    trust_streak: int = 30             # consecutive agreements before checks thin out
    establish_after: int = 10          # confirmations before a new identity's vote counts
    verify_floor: float = 0.05         # the smallest checking rate, even for proven workers
    probation_length: int = 20         # consecutive agreements to end probation
    shutout_seconds: float = 600.0     # first shut-out; doubles with each repeat
    max_votes: int = 5                 # workers asked before giving up on a majority
    quorum: int = 3                    # vote weight a verdict needs (proven 2, stranger 1)
    max_failures: int = 4              # transport failures tolerated per request
    down_backoff: float = 0.5          # first backoff after a failure; doubles, capped
    down_backoff_max: float = 30.0
    price_weight: float = 0.0          # seconds of latency one unit of price is worth
    verify_cost: float = 1.0           # weight of the expected checking cost in the score
    default_latency: float = 0.05      # prior for a worker with no history and no bid
    prior_weight: float = 2.0          # observations the prior is worth
    window: int = 20                   # the moving estimates' effective window
    obs_variance: float = 0.25         # prior variance of one log-latency observation
    drift: float = 0.002               # variance added per second unobserved (exploration)
    elite: int = 16                    # with many workers: best-known candidates scored
    explore: int = 8                   # ... plus this many random ones
    refresh_every: int = 256           # choices between re-sorting the best-known list
    replicas: int = 0                  # 0: adaptive; 1: never check; n: always n workers
    unavailable_half_life: float = 60.0  # seconds for an availability penalty to halve
    unavailable_weight: float = 0.5    # score factor per unit of availability penalty
    timeout_retries: int = 1           # fresh workers tried after every answer timed out


@dataclass
class Estimate:
    """An exponentially weighted estimate of a log-latency: mean, variance, count."""
    mean: float = 0.0
    var: float = 0.0
    n: int = 0
    last: float = 0.0

    def observe(self, x: float, now: float, window: int) -> None:
        self.n += 1
        self.last = now
        if self.n == 1:
            self.mean, self.var = x, 0.0
            return
        a = 1.0 / min(self.n, window)
        d = x - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)

    def to_list(self) -> list:
        return [self.mean, self.var, self.n, self.last]

    @classmethod
    def from_list(cls, v) -> "Estimate":
        return cls(float(v[0]), float(v[1]), int(v[2]), float(v[3]))


@dataclass(eq=False)
class Worker:
    """What the market knows of one worker node."""
    address: str
    functions: frozenset | None = None      # None: offers everything (simulation)
    capacity: int = 1
    trusted: bool = False                   # an oracle node: its vote settles
    state: str = ACTIVE
    agreed: int = 0
    lost: int = 0
    streak: int = 0
    requests: int = 0
    completed: int = 0
    failures: int = 0
    in_flight: int = 0
    shut_until: float = 0.0
    shutouts: int = 0
    probation_left: int = 0
    confirmed: int = 0      # agreements with verdicts that had weight (or the engine's)
    down_until: float = 0.0
    consecutive_failures: int = 0
    bid_price: float = 0.0
    bid_latency: dict = field(default_factory=dict)     # kind -> seconds (the worker's claim)
    latency: dict = field(default_factory=dict)         # kind -> Estimate of log seconds
    ratio: Estimate = field(default_factory=Estimate)   # log(latency / kind's global mean)
    alive: bool = True                                  # False: removed by the operator
    # Availability (not honesty): timeouts, crashes, connection errors, Overloaded.  A
    # decaying penalty, +1 per failure, halving every ``unavailable_half_life`` seconds;
    # it only makes the worker less likely to be chosen, never shuts it out.
    unavailable: float = 0.0
    unavailable_at: float = 0.0

    @property
    def verified(self) -> int:
        return self.agreed + self.lost

    def reputation(self, policy: Policy) -> float:
        return (self.agreed + 1.0) / (self.agreed + 2.0 + policy.loss_weight * self.lost)

    def unavailability(self, policy: Policy, now: float) -> float:
        """The availability penalty now (decayed since it was last raised)."""
        if not self.unavailable:
            return 0.0
        age = max(0.0, now - self.unavailable_at)
        return self.unavailable * 0.5 ** (age / max(policy.unavailable_half_life, 1e-9))

    def offers(self, needs: frozenset) -> bool:
        return self.functions is None or needs <= self.functions


def kind_of(size: int) -> str:
    """The kind of work a request is, for latency estimates: its size, in powers of two."""
    return "s%d" % max(0, int(size)).bit_length()


class Job:
    """One request's life in the market: dispatches, votes, retries, the verdict.

    ``start`` and every ``on_result``/``on_failure`` return the addresses to dispatch to
    now (the caller runs them and reports back).  When ``done`` is set, ``outcome`` holds
    the agreed result, or ``error`` says why there is none.
    """

    def __init__(self, market: "Market", kind: str, needs: frozenset,
                 local_check: bool = False):
        self.market = market
        self.local_check = local_check  # the caller can check a value itself (pure)
        self.check_wanted = False       # a check was due (by policy, or none possible)
        self.disputed = False           # unverified, and the workers disagreed
        # Nobody established could take part and the caller cannot check it itself (a
        # fresh deployment's host function): new identities then vote by headcount, as
        # "unconfirmed-nodes", and such a verdict confirms nobody.
        self.bootstrap = False
        self.kind = kind
        self.needs = needs
        self.outstanding: set[str] = set()
        self.late: set[str] = set()     # outstanding, overdue, and already replaced
        self.outcomes: dict[str, Hashable] = {}
        self.discarded: dict[str, Hashable] = {}
        self.limited: dict[str, str] = {}   # address -> the limit its run passed
        self.tried: set[str] = set()
        self.failures = 0
        self.checked = False        # replicated: the verdict comes from a vote
        self.done = False
        self.outcome: Hashable = None
        self.error: str | None = None
        self.primary: str | None = None
        self.verified_by: str | None = None  # who checked the verdict (see _finish)

    # -- the caller's entry points -------------------------------------------------

    def start(self, now: float) -> list[str]:
        m = self.market
        primary = m.choose(self.kind, self.needs, now)
        if primary is None:
            return self._fail("no eligible worker is available")
        if m.policy.replicas:
            self.check_wanted = True
            return self._start_fixed(primary, now)
        self.bootstrap = not self.local_check and not m.has_established(self.needs, now)
        self.check_wanted = m.needs_check(primary)
        if not self.check_wanted and not primary.trusted and not self.local_check \
                and not m.checkable(self.needs, now, exclude={primary.address}):
            # A proven worker is spot-checked only where a check is possible at all: a
            # sole provider's reputation, earned elsewhere, says nothing about this.
            self.check_wanted = True
        if self.check_wanted:
            verifier = m.choose(self.kind, self.needs, now, exclude={primary.address},
                                verifier=True)
            if verifier is None and primary.state == PROBATION:
                # A worker on probation never answers alone: use someone else if possible.
                alone = m.choose(self.kind, self.needs, now, exclude={primary.address},
                                 allow_probation=False)
                if alone is not None:
                    primary = alone
            elif verifier is not None:
                self.checked = True
                self.primary = primary.address
                return self._dispatch(primary, now) + self._dispatch(verifier, now)
        self.primary = primary.address
        return self._dispatch(primary, now)

    def _start_fixed(self, primary: Worker, now: float) -> list[str]:
        """The baselines: never check (replicas=1), or always ask n workers."""
        self.primary = primary.address
        sent = self._dispatch(primary, now)
        for _ in range(self.market.policy.replicas - 1):
            other = self.market.choose(self.kind, self.needs, now, exclude=self.tried)
            if other is None:
                break
            self.checked = True
            sent += self._dispatch(other, now)
        return sent

    def on_result(self, address: str, outcome: Hashable, latency: float,
                  now: float) -> list[str]:
        if address not in self.outstanding:
            return []                   # a late answer after a timeout: ignored
        self.outstanding.discard(address)
        self.late.discard(address)
        m = self.market
        w = m.workers[address]
        w.in_flight -= 1
        w.completed += 1
        w.consecutive_failures = 0
        m.observe_latency(w, self.kind, latency, now)
        self.outcomes[address] = outcome
        if self.done:
            return []
        return self._decide(now)

    def on_limit(self, address: str, limit: str, latency: float, now: float) -> list[str]:
        """The worker's run passed one of the request's limits (``limit``: max_steps,
        max_heap, max_depth or timeout).  Not an answer and not a vote: if another worker
        completes the run, its value decides and the limited worker only takes an
        availability penalty (a timeout is a slow worker, not a liar); if every worker
        tried passes a limit, that is the program's (the user's) LimitExceeded, and
        nobody is penalised."""
        if address not in self.outstanding:
            return []
        self.outstanding.discard(address)
        self.late.discard(address)
        w = self.market.workers[address]
        w.in_flight -= 1
        w.consecutive_failures = 0
        self.limited[address] = limit
        if self.done:
            return []
        return self._decide(now)

    def on_failure(self, address: str, now: float) -> list[str]:
        """A transport failure or timeout: the worker's answer will never count."""
        if address not in self.outstanding:
            return []
        self.outstanding.discard(address)
        m = self.market
        w = m.workers[address]
        w.in_flight -= 1
        m.record_failure(w, now)
        self.failures += 1
        if self.done:
            return []
        if address in self.late:
            # Its replacement is already out (on_slow): nothing more to send.
            self.late.discard(address)
            return [] if self._waiting() else self._decide(now)
        if self.failures > m.policy.max_failures:
            if self._waiting():
                return []
            return self._fail("%d workers failed on this request" % self.failures)
        replacement = m.choose(self.kind, self.needs, now, exclude=self.tried,
                               verifier=bool(self.outcomes) or address != self.primary)
        if replacement is not None:
            if address == self.primary and not self.outcomes:
                self.primary = replacement.address
            return self._dispatch(replacement, now)
        if self._waiting():
            return []
        return self._decide(now)

    def on_slow(self, address: str, now: float) -> list[str]:
        """A dispatch is overdue: ask another worker as well, without giving up on this
        one (whichever answers first serves; a late answer still counts as latency)."""
        m = self.market
        if self.done or address not in self.outstanding or address in self.late \
                or len(self.tried) > m.policy.max_votes:
            return []
        replacement = m.choose(self.kind, self.needs, now, exclude=self.tried,
                               verifier=bool(self.outcomes) or address != self.primary)
        if replacement is None:
            return []
        self.late.add(address)
        if address == self.primary and not self.outcomes:
            self.primary = replacement.address
        return self._dispatch(replacement, now)

    def _waiting(self) -> bool:
        """Is a dispatch still due (one that is not overdue and replaced)?"""
        return bool(self.outstanding - self.late)

    def abandon(self) -> None:
        """Release the workers still counted as busy (the caller gave up on the job)."""
        for address in self.outstanding:
            self.market.workers[address].in_flight -= 1
        self.outstanding.clear()
        if not self.done:
            self._fail("abandoned")

    # -- internals --------------------------------------------------------------

    def _dispatch(self, w: Worker, now: float) -> list[str]:
        self.tried.add(w.address)
        self.outstanding.add(w.address)
        w.in_flight += 1
        w.requests += 1
        self.market.dispatched += 1
        return [w.address]

    def _fail(self, reason: str) -> list[str]:
        self.done = True
        self.error = reason
        return []

    def _finish(self, outcome: Hashable, now: float, vote: bool = True) -> list[str]:
        """The verdict; ``vote``: it came from a vote, which credits and punishes.

        ``verified_by`` says who checked it: "independent-node" (two or more workers
        agree), "trusted-worker" (a trusted worker's word), "spot-checked" (one proven
        worker's, unchecked this time by the sampling, where a check was possible), or
        "none" (nobody: a check was due and nobody could, or the vote gave no verdict
        and one worker's word is all there is; the caller may check it itself)."""
        self.done = True
        self.outcome = outcome
        backers = [a for a, o in self.outcomes.items() if o == outcome]
        confirmed = any(self.market.established(self.market.workers[a]) for a in backers)
        if vote and len(backers) >= 2:
            # A vote's verdict has weight behind it (an established backer), unless it
            # was by headcount among new identities (``bootstrap``).
            self.verified_by = "independent-node" if confirmed else "unconfirmed-nodes"
        elif any(self.market.workers[a].trusted for a in backers):
            self.verified_by = "trusted-worker"
        elif vote and not self.check_wanted and not self.checked:
            self.verified_by = "spot-checked"
        else:
            self.verified_by = "none"
        for address in self.limited:
            # Someone completed the run within its limits: those that did not were slow
            # (or overloaded), which is an availability failure, not a disagreement.
            self.market.record_unavailable(self.market.workers[address], now)
        if vote and (len(self.outcomes) >= 2 or self.checked):
            self.market.settle(self.outcomes, outcome, now, confirm=confirmed)
        if self.discarded:
            self.market.settle({a: o for a, o in self.discarded.items() if o != outcome},
                               outcome, now)
        return []

    def _decide(self, now: float) -> list[str]:
        m = self.market
        # A worker shut out while this request ran has no vote any more.
        for address in [a for a in self.outcomes if m.workers[a].state == SHUT_OUT]:
            self.discarded[address] = self.outcomes.pop(address)
        oracle_votes = [o for a, o in self.outcomes.items() if m.workers[a].trusted]
        if oracle_votes:
            top, count = Counter(oracle_votes).most_common(1)[0]
            if count * 2 > len(oracle_votes):
                return self._finish(top, now)
        if self._waiting():
            return []
        if not self.outcomes and self.limited:
            # Nobody completed the run; some passed a limit.  A deterministic limit
            # (steps, heap, depth) is the program's; a timeout may be a slow worker, so
            # a fresh worker gets ``timeout_retries`` more chances first.
            limits = Counter(self.limited.values())
            timeouts_only = set(limits) == {"timeout"}
            if timeouts_only and limits["timeout"] <= m.policy.timeout_retries \
                    and len(self.tried) < m.policy.max_votes + self.failures:
                fresh = m.choose(self.kind, self.needs, now, exclude=self.tried)
                if fresh is not None:
                    return self._dispatch(fresh, now)
            deterministic = [x for x in limits if x != "timeout"]
            limit = max(deterministic, key=lambda x: limits[x]) if deterministic \
                else "timeout"
            self.done = True
            self.outcome = ("error", "LimitExceeded", limit)
            self.verified_by = "none"
            return []
        if not self.outcomes:
            # Every answer was void (its worker failed, or was shut out meanwhile).
            if len(self.tried) < m.policy.max_votes + self.failures:
                fresh = m.choose(self.kind, self.needs, now, exclude=self.tried,
                                 verifier=True, dispute=True)
                if fresh is not None:
                    self.checked = True
                    return self._dispatch(fresh, now)
            return self._fail("every worker tried failed")
        # Votes are weighed by reputation earned from checked work, never by headcount:
        # a new identity weighs 0 (until ``establish_after`` confirmations), an
        # established worker 1, a proven one 2, and a verdict needs two backers weighing
        # at least ``quorum``, more than any other answer.  New identities agreeing with
        # each other (perhaps Sybils) therefore decide nothing, however many they are.
        weight: Counter = Counter()
        backers: Counter = Counter()
        for address, outcome in self.outcomes.items():
            weight[outcome] += m.vote_weight(m.workers[address]) or int(self.bootstrap)
            backers[outcome] += 1
        top = max(backers, key=lambda o: (weight[o], backers[o]))
        count = weight[top]
        runner_up = max((weight[o] for o in backers if o != top), default=0)
        disputed = len(backers) > 1
        if len(self.outcomes) == 1 and not self.checked:
            return self._finish(top, now)
        if backers[top] >= 2 and count >= m.policy.quorum and count > runner_up:
            return self._finish(top, now)
        # A disagreement (or a check whose checker failed, or agreement without weight):
        # one more independent vote, from a worker whose vote weighs something.
        if len(self.tried) < m.policy.max_votes:
            extra = m.choose(self.kind, self.needs, now, exclude=self.tried, verifier=True,
                             dispute=disputed, weighty=not self.bootstrap)
            if extra is not None:
                self.checked = True
                return self._dispatch(extra, now)
        if backers[top] >= 2 and count > runner_up and count > 0:
            # Nobody left to ask: the majority of the weight there is still settles it.
            return self._finish(top, now)
        if count > runner_up or (not disputed and not self._has_probation_only(top)):
            # Nobody left to ask: the weightiest word (or the one answer new identities
            # gave) is the best there is.  It proves nothing about anyone: the verdict
            # is unverified, which the caller may check itself (``local_check``).
            return self._finish(top, now, vote=False)
        if disputed and self.local_check:
            # Workers without weight disagree: the caller's own run will settle it.
            self.disputed = True
            return self._finish(top, now, vote=False)
        return self._fail("workers disagree and no majority could be formed")

    def _has_probation_only(self, outcome: Hashable) -> bool:
        backers = [a for a, o in self.outcomes.items() if o == outcome]
        return all(self.market.workers[a].state == PROBATION for a in backers)


class Market:
    """Workers, their estimates and reputations, and the choice of who does what."""

    def __init__(self, policy: Policy | None = None, rng: random.Random | None = None,
                 store=None):
        self.policy = policy or Policy()
        self.rng = rng or random.Random()
        self.store = store
        self.workers: dict[str, Worker] = {}
        self.kinds: dict[str, Estimate] = {}
        self.dirty: set[str] = set()
        self.dispatched = 0
        self._order: list[Worker] = []
        self._oracles: list[Worker] = []
        self._choices = 0
        if store is not None:
            for record in store.load():
                w = worker_from_record(record)
                self.workers[w.address] = w
                w.alive = False          # known, but not part of this run until added

    # -- membership ----------------------------------------------------------------

    def add_worker(self, address: str, functions: Iterable[str] | None = None,
                   capacity: int = 1, trusted: bool = False) -> Worker:
        """Add (or refresh) a worker; a known address keeps its reputation and history."""
        w = self.workers.get(address)
        if w is None:
            w = Worker(address)
            self.workers[address] = w
        w.functions = None if functions is None else frozenset(functions)
        w.capacity = max(1, int(capacity))
        w.trusted = trusted
        w.alive = True
        w.down_until = 0.0
        self._order = []
        self._oracles = [o for o in self.workers.values() if o.trusted and o.alive]
        self.dirty.add(address)
        return w

    def remove_worker(self, address: str) -> None:
        w = self.workers.get(address)
        if w is not None:
            w.alive = False
            self._order = []
            self._oracles = [o for o in self._oracles if o is not w]

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    def missing_functions(self, needs: Iterable[str]) -> set[str]:
        """The names no live worker offers (trusted or not, shut out or not)."""
        missing = set(needs)
        for w in self.workers.values():
            if not missing:
                break
            if w.alive:
                if w.functions is None:
                    return set()
                missing -= w.functions
        return missing

    def set_bid(self, address: str, kind: str, price: float, latency: float | None) -> None:
        w = self.workers.get(address)
        if w is not None:
            w.bid_price = float(price)
            if latency is not None and latency > 0:
                w.bid_latency[kind] = float(latency)

    # -- trust -----------------------------------------------------------------

    def refresh_state(self, w: Worker, now: float) -> str:
        """Move a shut-out worker whose time is served onto probation."""
        if w.state == SHUT_OUT and now >= w.shut_until:
            w.state = PROBATION
            w.probation_left = self.policy.probation_length
            self.dirty.add(w.address)
        return w.state

    def established(self, w: Worker) -> bool:
        """Confirmed often enough by established workers, trusted ones or the broker's
        engine to have a vote that weighs something (a new identity has none)."""
        return w.trusted or (w.state == ACTIVE and
                             w.confirmed >= self.policy.establish_after)

    def proven(self, w: Worker) -> bool:
        return w.trusted or (self.established(w) and w.streak >= self.policy.trust_streak)

    def vote_weight(self, w: Worker) -> int:
        """A vote's weight: 0 for a new identity, 1 established, 2 proven."""
        if self.proven(w):
            return 2
        return 1 if self.established(w) else 0

    def verify_probability(self, w: Worker) -> float:
        """How often a result from ``w`` is checked (BOINC's adaptive replication)."""
        p = self.policy
        if w.trusted:
            return 0.0
        if w.state != ACTIVE or w.streak < p.trust_streak:
            return 1.0
        return max(p.verify_floor, min(1.0, (p.trust_streak / w.streak) ** 2))

    def needs_check(self, w: Worker) -> bool:
        q = self.verify_probability(w)
        return q >= 1.0 or (q > 0.0 and self.rng.random() < q)

    def settle(self, outcomes: dict[str, Hashable], winner: Hashable, now: float,
               confirm: bool = True) -> None:
        """Credit the workers that agree with the verdict; punish those that do not.
        ``confirm``: the verdict had weight (or is the broker engine's), so agreeing
        with it counts toward a new identity's ``establish_after``."""
        p = self.policy
        for address, outcome in outcomes.items():
            w = self.workers[address]
            self.dirty.add(address)
            if outcome == winner:
                w.agreed += 1
                if confirm:
                    w.confirmed += 1
                w.streak += 1
                if w.state == PROBATION:
                    w.probation_left -= 1
                    if w.probation_left <= 0:
                        w.state = ACTIVE
            else:
                w.lost += 1
                w.streak = 0
                if w.trusted:
                    continue        # an oracle outvoted by oracles is the operator's problem
                if w.state == PROBATION or w.reputation(p) < p.shut_threshold:
                    w.state = SHUT_OUT
                    w.shut_until = now + p.shutout_seconds * (2 ** min(w.shutouts, 20))
                    w.shutouts += 1
                    self._order = []
                    if self.store is not None:
                        self.flush()     # a liar stays shut out even if we crash now

    def record_unavailable(self, w: Worker, now: float) -> None:
        """An availability failure: raise the worker's decaying penalty by one."""
        w.unavailable = w.unavailability(self.policy, now) + 1.0
        w.unavailable_at = now
        self.dirty.add(w.address)

    def record_failure(self, w: Worker, now: float) -> None:
        p = self.policy
        self.record_unavailable(w, now)
        w.failures += 1
        w.consecutive_failures += 1
        backoff = min(p.down_backoff_max, p.down_backoff * 2 ** (w.consecutive_failures - 1))
        w.down_until = now + backoff
        self.dirty.add(w.address)

    # -- latency ---------------------------------------------------------------

    def observe_latency(self, w: Worker, kind: str, seconds: float, now: float) -> None:
        x = math.log(max(seconds, 1e-6))
        window = self.policy.window
        k = self.kinds.get(kind)
        if k is None:
            k = self.kinds[kind] = Estimate()
        if k.n:
            w.ratio.observe(x - k.mean, now, window)
        k.observe(x, now, 10 * window)
        e = w.latency.get(kind)
        if e is None:
            e = w.latency[kind] = Estimate()
        e.observe(x, now, window)
        self.dirty.add(w.address)

    def latency_belief(self, w: Worker, kind: str, now: float) -> tuple[float, float]:
        """Mean and standard deviation of the worker's log-latency for this kind."""
        p = self.policy
        k = self.kinds.get(kind)
        if w.ratio.n and k is not None and k.n:
            prior = k.mean + w.ratio.mean
        elif kind in w.bid_latency:
            prior = math.log(w.bid_latency[kind])
        elif k is not None and k.n:
            prior = k.mean
        else:
            prior = math.log(p.default_latency)
        e = w.latency.get(kind)
        if e is None or not e.n:
            n, mean, var, last = 0.0, prior, p.obs_variance, max(w.ratio.last, 0.0)
        else:
            n = float(min(e.n, p.window))
            mean = (p.prior_weight * prior + n * e.mean) / (p.prior_weight + n)
            var = max(e.var, 0.01)
            last = e.last
        unseen = max(0.0, now - last) if last else 0.0
        sd = math.sqrt(var / (p.prior_weight + n) + p.drift * unseen)
        return mean, sd

    def typical_latency(self, kind: str) -> float:
        """What a request of this kind usually takes, over all workers (seconds)."""
        k = self.kinds.get(kind)
        return math.exp(k.mean) if k is not None and k.n else self.policy.default_latency

    def expected_latency(self, w: Worker, kind: str, now: float) -> float:
        mean, _ = self.latency_belief(w, kind, now)
        return math.exp(mean)

    # -- the choice ----------------------------------------------------------------

    def eligible(self, w: Worker, needs: frozenset, now: float, exclude=(),
                 allow_probation: bool = True) -> bool:
        if not w.alive or w.address in exclude or w.down_until > now:
            return False
        state = self.refresh_state(w, now)
        if state == SHUT_OUT or (state == PROBATION and not allow_probation):
            return False
        return w.offers(needs)

    def score(self, w: Worker, kind: str, now: float, sample: bool = True) -> float:
        """The scoring rule of the module docstring: lower is better."""
        p = self.policy
        mean, sd = self.latency_belief(w, kind, now)
        log_latency = self.rng.gauss(mean, sd) if sample else mean
        finish = math.exp(log_latency) * (1.0 + w.in_flight / w.capacity)
        return finish * (1.0 + p.verify_cost * self.verify_probability(w)) \
            * (1.0 + p.unavailable_weight * w.unavailability(p, now)) \
            + p.price_weight * w.bid_price

    def _candidates(self, needs: frozenset, now: float, exclude, allow_probation) -> list:
        p = self.policy
        everyone = self.workers
        if len(everyone) <= p.elite + p.explore:
            return [w for w in everyone.values()
                    if self.eligible(w, needs, now, exclude, allow_probation)]
        # Many workers: score the best-known few (skipping busy ones) and a random few.
        self._choices += 1
        if not self._order or self._choices % p.refresh_every == 0:
            # Relative speed (log of latency over the kind's mean); unknown workers at par.
            self._order = sorted((w for w in everyone.values() if w.alive),
                                 key=lambda w: w.ratio.mean if w.ratio.n else 0.0)
        chosen: dict[str, Worker] = {}
        scanned = 0
        for w in self._order:
            if len(chosen) >= p.elite or scanned >= 20 * p.elite:
                break
            scanned += 1
            if w.in_flight < w.capacity and self.eligible(w, needs, now, exclude,
                                                          allow_probation):
                chosen[w.address] = w
        pool = self._order
        for _ in range(3 * p.explore):
            if len(chosen) >= p.elite + p.explore:
                break
            w = pool[int(self.rng.random() * len(pool))]
            if w.address not in chosen and self.eligible(w, needs, now, exclude,
                                                         allow_probation):
                chosen[w.address] = w
        return list(chosen.values())

    def choose(self, kind: str, needs: frozenset, now: float, exclude=(),
               verifier: bool = False, allow_probation: bool = True,
               dispute: bool = False, weighty: bool = False) -> Worker | None:
        """The worker with the lowest sampled score; a verifier prefers trusted workers."""
        candidates = self._candidates(needs, now, exclude, allow_probation)
        if verifier:
            # A checker should be independent of the liar it checks: an oracle node if one
            # is free, else a proven worker; on probation, a worker never checks others.
            # While nobody is proven yet, a busy oracle is still better than a stranger,
            # and a dispute goes to an oracle however busy it is.
            oracles = [w for w in self._oracles if self.eligible(w, needs, now, exclude)]
            free = [w for w in oracles if w.in_flight < w.capacity]
            queued = [w for w in oracles if dispute or w.in_flight < 2 * w.capacity]
            active = [w for w in candidates if w.state == ACTIVE and not w.trusted]
            proven = [w for w in active if self.proven(w)]
            established = [w for w in active if self.established(w)]
            candidates = free or proven or established or queued
            if not candidates and active and not weighty:
                # Strangers check strangers at random: a fast liar must not be able to
                # attract the checks by looking fast.
                return active[int(self.rng.random() * len(active))]
        if not candidates:
            return None
        return min(candidates, key=lambda w: self.score(w, kind, now))

    def open_job(self, kind: str, needs: Iterable[str] = (), local_check: bool = False) -> Job:
        """A job; ``local_check``: the caller can check a value itself (the broker runs
        a pure program on its own engine), so a lone proven worker is spot-checked."""
        return Job(self, kind, frozenset(needs), local_check)

    def has_established(self, needs: frozenset, now: float) -> bool:
        """Does an established (or trusted) live worker offer ``needs``?"""
        for w in self.workers.values():
            if w.alive and w.offers(needs) and self.refresh_state(w, now) == ACTIVE \
                    and self.established(w):
                return True
        return False

    def checkable(self, needs: frozenset, now: float, exclude=()) -> bool:
        """Could another worker check a result (alive, not shut out, offers ``needs``;
        a worker down for a moment still counts)?"""
        for w in self.workers.values():
            if w.alive and w.address not in exclude and w.offers(needs) \
                    and self.refresh_state(w, now) != SHUT_OUT:
                return True
        return False

    # -- reporting and persistence -----------------------------------------------

    def stats(self, now: float) -> list[dict]:
        """One row per live worker, for the stats call and ``exathunk status``."""
        total = sum(w.requests for w in self.workers.values() if w.alive) or 1
        rows = []
        for w in sorted(self.live_workers(), key=lambda w: w.address):
            state = self.refresh_state(w, now)
            if w.down_until > now:
                state = DOWN
            rows.append({
                "address": w.address, "state": state,
                "reputation": w.reputation(self.policy),
                "latency": self._overall_latency(w, now),
                "share": w.requests / total,
                "requests": w.requests, "failures": w.failures,
                "verified": w.verified, "disagreed": w.lost,
                "in_flight": w.in_flight, "verify_rate": self.verify_probability(w),
                "trusted": w.trusted,
            })
        return rows

    def _overall_latency(self, w: Worker, now: float) -> float:
        if not w.latency:
            return 0.0
        best = max(w.latency.items(), key=lambda item: item[1].n)
        return math.exp(best[1].mean)

    def flush(self) -> None:
        """Write the changed workers to the store (if any)."""
        if self.store is None or not self.dirty:
            return
        records = [worker_record(self.workers[a]) for a in sorted(self.dirty)
                   if a in self.workers]
        self.dirty.clear()
        self.store.save(records)


def worker_record(w: Worker) -> dict:
    """The persistent part of a worker: reputation, counters, estimates."""
    return {
        "address": w.address, "state": w.state, "agreed": w.agreed, "lost": w.lost,
        "streak": w.streak, "requests": w.requests, "completed": w.completed,
        "failures": w.failures, "shut_until": w.shut_until, "shutouts": w.shutouts,
        "probation_left": w.probation_left, "trusted": w.trusted,
        "unavailable": w.unavailable, "unavailable_at": w.unavailable_at,
        "confirmed": w.confirmed,
        "latency": {k: e.to_list() for k, e in w.latency.items()},
        "ratio": w.ratio.to_list(),
    }


def worker_from_record(r: dict) -> Worker:
    w = Worker(r["address"])
    for name in ("state", "agreed", "lost", "streak", "requests", "completed", "failures",
                 "shut_until", "shutouts", "probation_left", "trusted", "unavailable",
                 "unavailable_at", "confirmed"):
        if name in r:
            setattr(w, name, r[name])
    w.latency = {k: Estimate.from_list(v) for k, v in r.get("latency", {}).items()}
    if "ratio" in r:
        w.ratio = Estimate.from_list(r["ratio"])
    return w
