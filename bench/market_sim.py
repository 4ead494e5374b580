"""The market beyond one machine: 1,000 simulated nodes driven through the REAL market core.

``exathunk.market`` (the broker's scheduling and reputation code, imported, not copied)
runs on a virtual clock over simulated nodes of heterogeneous, unknown speed; 10% of them
are hostile: independent liars (a random wrong value at a per-node rate) and colluders
(the same wrong value, on the same requests, so they agree with each other); 3% of the
honest ones are flaky (they drop requests, which the broker sees as a timeout and
retries elsewhere).  A few nodes are configured trusted oracles.  Each node serves one request at a time, FIFO; the
latency the market observes includes queueing, as the broker's would.

It compares, on the same nodes and the same request stream:
  adaptive  the market as shipped (adaptive replication, majority votes, reputation),
  no-check  the same scheduler with checking off (the oracle-free baseline),
  triple    every request on three workers, majority wins,
and prints wrong results, extra work per request and mean latency, overall and at
steady state (the second half of the run).  A new identity's vote weighs nothing until
it is confirmed (``Policy.establish_after``); a verdict nobody with weight backs is
checked on the broker's own engine, as the broker does for pure programs, which counts
as one unit of extra work and a speed-1 node's time.

    python bench/market_sim.py                 # 1,000 nodes, default run (< 1 minute)
    python bench/market_sim.py --requests 100000 --oracles 0 --seed 2
    python bench/market_sim.py --sleepers 0.05  # patient liars: adaptive checking's limit
    python bench/market_sim.py --scenario sybil         # 30% late-joining colluders
    python bench/market_sim.py --scenario patient-liar  # 10% honest 300 times, then 5% lies

Two scenarios replace the default hostile mix.  ``sybil``: 30% of the nodes (``--sybils``)
are colluding identities that join after 20% of the requests (``--sybil-after``), when the
honest ones have served some, and all give the same wrong answer to every request.
``patient-liar``: 10% of the nodes (``--sleepers``) answer honestly for their first 300
answers, then lie on 5% of them.  Each scenario adds a claim: 0 wrong results (adaptive,
the whole run).

Then the simulator's two claims, each MET or MISSED (judged when the modes they compare
ran): at steady state the adaptive market gives fewer wrong results than no-check (or
none), and costs less extra work than triple.  Progress (requests done per mode) goes
to stderr: a tqdm bar when tqdm is installed (pip install 'exathunk[bench]'), else
plain lines.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchkit  # noqa: E402  (chooses the exathunk to import)
from exathunk.market import Market, Policy, kind_of  # noqa: E402

HONEST, LIAR, COLLUDER, SLEEPER = "honest", "liar", "colluder", "sleeper"
SYBIL = "sybil"                     # a late-arriving colluder that lies on every request
SCENARIOS = ("default", "sybil", "patient-liar")
SLEEPER_PATIENCE = 300              # answers a sleeper gives honestly before it starts lying
WORK_SIZES = (1, 2, 4, 8)           # units of work; a unit takes 10 ms on a speed-1 node
TIMEOUT = 0.5                       # seconds before the broker gives up on a dropped request


class Node:
    __slots__ = ("address", "speed", "role", "lie_rate", "drop_rate", "busy_until", "rng",
                 "served", "joins_at", "lies")

    def __init__(self, address, speed, role, lie_rate, seed, drop_rate=0.0, joins_at=0.0):
        self.address, self.speed, self.role, self.lie_rate = address, speed, role, lie_rate
        self.drop_rate = drop_rate
        self.joins_at = joins_at        # the share of the requests that arrive before it joins
        self.served = 0
        self.lies = 0
        self.busy_until = 0.0
        self.rng = random.Random(seed)

    def answer(self, request_id: int, collusion_salt: int):
        outcome = self._answer(request_id, collusion_salt)
        if outcome[1] != request_id * 7919 % 1000003:
            self.lies += 1
        return outcome

    def _answer(self, request_id: int, collusion_salt: int):
        truth = ("ok", request_id * 7919 % 1000003)
        self.served += 1
        if self.role == SLEEPER and self.served > SLEEPER_PATIENCE and \
                self.rng.random() < self.lie_rate:
            return ("ok", truth[1] + 1 + self.rng.randrange(1000))
        if self.role == SYBIL:
            return ("ok", -truth[1] - 1)     # the bloc's one wrong answer, every time
        if self.role == LIAR and self.rng.random() < self.lie_rate:
            return ("ok", truth[1] + 1 + self.rng.randrange(1000))
        if self.role == COLLUDER:
            # Colluders lie on the same requests with the same value: they vote as a bloc.
            h = hashlib.blake2b(b"%d:%d" % (collusion_salt, request_id), digest_size=4)
            if int.from_bytes(h.digest(), "big") / 2 ** 32 < self.lie_rate:
                return ("ok", -truth[1])
        return truth


def make_nodes(n: int, hostile: float, oracles: int, seed: int, flaky: float = 0.03,
               sleepers: float = 0.0):
    rng = random.Random(seed)
    sleeper_rng = random.Random(seed + 99)
    nodes = []
    for i in range(n):
        speed = math.exp(rng.gauss(0.0, 0.8))
        roll = rng.random()
        if i < oracles:
            role, rate = HONEST, 0.0
        elif roll < hostile / 2:
            role, rate = LIAR, rng.uniform(0.1, 1.0)
        elif roll < hostile:
            role, rate = COLLUDER, rng.uniform(0.3, 1.0)
            speed *= 2.0          # hostile nodes make themselves attractive
        else:
            role, rate = HONEST, 0.0
        # Some honest nodes are flaky: they drop requests (the broker sees a timeout).
        drop = rng.uniform(0.05, 0.5) if role == HONEST and i >= oracles and \
            rng.random() < flaky else 0.0
        if sleepers and role == HONEST and i >= oracles and not drop and \
                sleeper_rng.random() < sleepers:
            # The patient adversary: honest until trusted, then an occasional lie.
            role, rate = SLEEPER, 0.05
        nodes.append(Node("node%04d" % i, speed, role, rate, rng.randrange(2 ** 31), drop))
    return nodes


def make_sybil_nodes(n: int, sybils: float, oracles: int, seed: int, joins_at: float,
                     flaky: float = 0.03):
    """``n`` nodes: the last ``sybils`` of them (a fraction) are colluding identities
    that join once ``joins_at`` of the requests (a fraction) have arrived, and all give the same wrong answer to every
    request (and make themselves fast to attract work); the others are honest (a few
    flaky), there from the start."""
    nodes = make_nodes(n, 0.0, oracles, seed, flaky)
    count = min(n - oracles, int(round(n * sybils)))
    for node in nodes[n - count:]:
        node.role, node.lie_rate, node.drop_rate = SYBIL, 1.0, 0.0
        node.speed *= 2.0
        node.joins_at = joins_at
    return nodes


def simulate(nodes, oracles: int, requests: int, load: float, policy: Policy, seed: int,
             bar=None):
    """Run one request stream through a fresh Market; returns per-request records
    (``bar``, a progress bar, is advanced as requests finish)."""
    rng = random.Random(seed)
    market = Market(policy, rng=random.Random(seed + 1))
    late = {}             # request index -> nodes that join when it arrives
    for i, node in enumerate(nodes):
        node.busy_until = 0.0
        node.rng.seed(seed * 1000003 + i)
        node.served = 0
        node.lies = 0
        if node.joins_at > 0:
            late.setdefault(max(1, int(requests * node.joins_at)), []).append(node)
        else:
            market.add_worker(node.address, capacity=1, trusted=i < oracles)
    by_address = {node.address: node for node in nodes}
    mean_work = sum(WORK_SIZES) / len(WORK_SIZES) * 0.010
    capacity_rate = sum(node.speed for node in nodes) / mean_work
    arrival_rate = load * capacity_rate

    events = []           # (time, seq, kind, payload)
    seq = 0
    now = 0.0
    t = 0.0
    for request_id in range(requests):
        t += rng.expovariate(arrival_rate)
        events.append((t, seq, "arrive", request_id))
        seq += 1
    heapq.heapify(events)
    jobs = {}
    reported = set()
    records = []
    truth_of = {}
    sizes = {}

    def dispatch(job_id, addresses, now):
        nonlocal seq
        size = sizes[job_id]
        for address in addresses:
            node = by_address[address]
            service = size * 0.010 / node.speed * math.exp(rng.gauss(0.0, 0.2))
            if node.drop_rate and node.rng.random() < node.drop_rate:
                heapq.heappush(events, (now + TIMEOUT, seq, "lost", (job_id, address)))
                seq += 1
                continue
            start = max(now, node.busy_until)
            node.busy_until = start + service
            heapq.heappush(events, (node.busy_until, seq, "done", (job_id, address, now)))
            seq += 1

    salt = seed
    while events:
        now, _, what, payload = heapq.heappop(events)
        if what == "arrive":
            request_id = payload
            for node in late.pop(request_id, ()):
                market.add_worker(node.address, capacity=1)
            size = WORK_SIZES[rng.randrange(len(WORK_SIZES))]
            sizes[request_id] = size
            truth_of[request_id] = ("ok", request_id * 7919 % 1000003)
            # The requests are pure programs: the broker can run one on its own engine
            # when nobody could check it (``local_check``), as the real broker does.
            job = market.open_job(kind_of(size), local_check=True)
            jobs[request_id] = (job, now)
            dispatch(request_id, job.start(now), now)
        else:
            if what == "lost":
                job_id, address = payload
                job, arrived = jobs[job_id]
                more = job.on_failure(address, now)
            else:
                job_id, address, sent_at = payload
                job, arrived = jobs[job_id]
                outcome = by_address[address].answer(job_id, salt)
                more = job.on_result(address, outcome, now - sent_at, now)
            dispatch(job_id, more, now)
            if job.done and job_id not in reported:
                reported.add(job_id)
                work, outcome, latency = len(job.tried), job.outcome, now - arrived
                if job.error is None and job.verified_by == "none" and not policy.replicas:
                    # Unverified (only new identities answered, or they disagreed): the
                    # broker's engine runs it (a speed-1 node's time, one unit of work)
                    # and its answer settles the vote, confirming or punishing them.
                    outcome = truth_of[job_id]
                    market.settle(dict(job.outcomes), outcome, now)
                    work += 1
                    latency += sizes[job_id] * 0.010
                records.append((job_id, outcome == truth_of[job_id], latency,
                                work, job.error is not None))
                if bar is not None and len(records) % 1000 == 0:
                    bar.update(1000)
    return market, sorted(records)


def summarise(records):
    n = len(records) or 1
    wrong = sum(1 for r in records if not r[1] and not r[4])
    failed = sum(1 for r in records if r[4])
    work = sum(r[3] for r in records)
    return {
        "requests": len(records), "wrong": wrong, "failed": failed,
        "extra": work / n - 1.0, "latency": sum(r[2] for r in records) / n,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Prints a MISSED line for each of the simulator's "
                                        "claims that a run does not bear out.")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=80000)
    ap.add_argument("--baseline-requests", type=int, default=None,
                    help="requests for the no-check and triple baselines (default 20000: "
                         "their steady state comes at once; under --scenario "
                         "patient-liar, --requests, since the liars only start lying "
                         f"after {SLEEPER_PATIENCE} answers)")
    ap.add_argument("--scenario", choices=SCENARIOS, default="default",
                    help="default: 10%% hostile nodes (--hostile); sybil: a fraction "
                         "(--sybils) of colluding identities that join late (after "
                         "--sybil-after of the requests) and all give the same wrong "
                         "answer to every request; patient-liar: a fraction (--sleepers, "
                         f"default 0.10 here) of nodes honest for their first "
                         f"{SLEEPER_PATIENCE} answers, then lying on 5%% of answers. "
                         "A scenario's claim: 0 wrong results (adaptive, whole run)")
    ap.add_argument("--hostile", type=float, default=None,
                    help="fraction of independent liars and colluders (default 0.10; "
                         "0 in the sybil and patient-liar scenarios)")
    ap.add_argument("--sybils", type=float, default=0.30,
                    help="--scenario sybil: fraction of --nodes that are Sybils")
    ap.add_argument("--sybil-after", type=float, default=0.20,
                    help="--scenario sybil: fraction of the requests that arrive before "
                         "the Sybils join")
    ap.add_argument("--oracles", type=int, default=10, help="trusted nodes among --nodes")
    ap.add_argument("--flaky", type=float, default=0.03,
                    help="fraction of honest nodes that drop requests")
    ap.add_argument("--sleepers", type=float, default=None,
                    help="fraction of honest nodes that turn liar (5%% of answers) after "
                         f"{SLEEPER_PATIENCE} honest answers")
    ap.add_argument("--load", type=float, default=0.25,
                    help="arrival rate as a fraction of the nodes' total capacity")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modes", default="adaptive,no-check,triple")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in ("adaptive", "no-check", "triple")]
    if unknown:
        ap.error(f"--modes: unknown mode(s) {', '.join(unknown)} "
                 "(of: adaptive, no-check, triple)")

    scenario = args.scenario
    if args.baseline_requests is None:
        args.baseline_requests = args.requests if scenario == "patient-liar" else 20000
    hostile = args.hostile if args.hostile is not None else (
        0.10 if scenario == "default" else 0.0)
    sleepers = args.sleepers if args.sleepers is not None else (
        0.10 if scenario == "patient-liar" else 0.0)
    if scenario == "sybil":
        if not 0.0 <= args.sybils < 1.0 or not 0.0 <= args.sybil_after < 1.0:
            ap.error("--sybils and --sybil-after are fractions in [0, 1)")
        nodes = make_sybil_nodes(args.nodes, args.sybils, args.oracles, args.seed,
                                 args.sybil_after, args.flaky)
    else:
        nodes = make_nodes(args.nodes, hostile, args.oracles, args.seed, args.flaky,
                           sleepers)
    roles = {r: sum(1 for n in nodes if n.role == r)
             for r in (HONEST, LIAR, COLLUDER, SLEEPER, SYBIL)}
    flaky = sum(1 for n in nodes if n.drop_rate)
    print("%d nodes (%d honest incl. %d oracles and %d flaky, %d liars, %d colluders, "
          "%d sleepers, %d sybils), load %.2f" % (
              len(nodes), roles[HONEST], args.oracles, flaky, roles[LIAR],
              roles[COLLUDER], roles[SLEEPER], roles[SYBIL], args.load))
    if scenario == "sybil":
        print("scenario sybil: the %d Sybils join after %.0f%% of each mode's requests"
              % (roles[SYBIL], 100.0 * args.sybil_after))
    policies = {"adaptive": Policy(), "no-check": Policy(replicas=1),
                "triple": Policy(replicas=3)}
    header = ("mode", "phase", "requests", "wrong", "wrong %", "failed", "extra work",
              "mean latency", "time")
    print("%-9s %-7s %8s %6s %8s %6s %10s %12s %6s" % header)
    steady = {}
    whole = {}
    for mode in modes:
        started = time.perf_counter()
        requests = args.requests if mode == "adaptive" else min(args.requests,
                                                                 args.baseline_requests)
        with benchkit.progress(total=requests, desc=f"{mode}: requests") as bar:
            market, records = simulate(nodes, args.oracles, requests, args.load,
                                       policies[mode], args.seed, bar)
        elapsed = time.perf_counter() - started
        half = len(records) // 2
        for phase, part in (("all", records), ("steady", records[half:])):
            s = summarise(part)
            if phase == "steady":
                steady[mode] = s
            else:
                whole[mode] = s
            print("%-9s %-7s %8d %6d %7.3f%% %6d %9.1f%% %10.1f ms %5.1fs" % (
                mode, phase, s["requests"], s["wrong"], 100.0 * s["wrong"] / max(1, s["requests"]),
                s["failed"], 100.0 * s["extra"], 1000.0 * s["latency"], elapsed))
        if mode == "adaptive":
            shut = [w for w in market.workers.values() if w.state != "active"]
            hostile = {n.address for n in nodes if n.role != HONEST}
            caught = sum(1 for w in shut if w.address in hostile)
            served = {n.address for n in nodes if n.role != HONEST}
            hostile_share = sum(market.workers[a].requests for a in served) / max(
                1, sum(w.requests for w in market.workers.values()))
            print("          shut out or on probation: %d hostile of %d, %d honest; "
                  "hostile share of dispatches %.1f%%" % (
                      caught, len(hostile), len(shut) - caught, 100.0 * hostile_share))
            liars = [n for n in nodes if n.role != HONEST]
            turned = sum(1 for n in liars if n.role == SLEEPER and
                         n.served > SLEEPER_PATIENCE)
            print("          hostile answers given: %d%s" % (
                sum(n.lies for n in liars),
                "; sleepers past their %d honest answers: %d of %d" % (
                    SLEEPER_PATIENCE, turned, roles[SLEEPER]) if roles[SLEEPER] else ""))


    print()
    lines = claims(steady)
    if scenario != "default":
        if "adaptive" in whole:
            s = whole["adaptive"]
            lines = [line for line in lines if not line.startswith("no claim judged")]
            lines.append(benchkit.verdict_line(
                s["wrong"] == 0, f"wrong results, adaptive, scenario {scenario}",
                "%d of %d" % (s["wrong"], s["requests"]), "0 wrong results"))
        else:
            lines.append(f"scenario {scenario}: not judged (it needs --modes adaptive)")
    for line in lines:
        print(line)


def claims(steady: dict) -> list[str]:
    """MET / MISSED lines for the simulator's claims, from the steady-state summaries."""
    lines = []

    def wrong_share(s):
        return s["wrong"] / max(1, s["requests"])
    if "adaptive" in steady and "no-check" in steady:
        a, b = wrong_share(steady["adaptive"]), wrong_share(steady["no-check"])
        lines.append(benchkit.verdict_line(
            a == 0 or a < b, "steady-state wrong results, adaptive", f"{a:.3%}",
            f"< no-check's {b:.3%}, or 0"))
    if "adaptive" in steady and "triple" in steady:
        a, b = steady["adaptive"]["extra"], steady["triple"]["extra"]
        lines.append(benchkit.verdict_line(
            a < b, "steady-state extra work, adaptive", f"{a:.1%}", f"< triple's {b:.1%}"))
    if not lines:
        lines.append("no claim judged: they compare adaptive with no-check and triple")
    return lines


if __name__ == "__main__":
    main()
