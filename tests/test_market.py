"""The market's pure core on a virtual clock: scoring, exploration, adaptive checking,
majority votes, shut-out and probation, routing by function, retries, persistence."""

import math
import random

import pytest

from exathunk.market import (ACTIVE, PROBATION, SHUT_OUT, Market, Policy, kind_of,
                             worker_record, worker_from_record)
from exathunk.reputation import ReputationStore


def run_job(market, now, answer, latency=lambda a: 0.01, fail=(), needs=(), kind="s3",
            local_check=False):
    """Drive one job to its end, answering each dispatch at once; returns (job, asked)."""
    job = market.open_job(kind, needs, local_check=local_check)
    pending = list(job.start(now))
    asked = []
    for _ in range(50):
        if not pending:
            break
        address = pending.pop(0)
        asked.append(address)
        if address in fail:
            pending += job.on_failure(address, now)
        else:
            pending += job.on_result(address, answer(address), latency(address), now)
    assert job.done
    return job, asked


def honest(address):
    return ("ok", 42)


def make_market(n=3, seed=0, **policy):
    # Most tests here are about scheduling, sampling and shut-outs among workers whose
    # votes count from the start (establish_after=0); the Sybil tests set it.
    policy.setdefault("establish_after", 0)
    m = Market(Policy(**policy), rng=random.Random(seed))
    for i in range(n):
        m.add_worker("w%d" % i)
    return m


def test_kind_buckets_by_size():
    assert kind_of(0) == "s0"
    assert kind_of(100) == kind_of(127) != kind_of(128)


def test_the_fastest_worker_gets_most_of_the_work():
    m = make_market(3)
    speed = {"w0": 0.005, "w1": 0.005, "w2": 0.025}   # w2 is five times slower
    counts = {a: 0 for a in speed}
    for step in range(600):
        job, asked = run_job(m, step * 0.01, honest, latency=speed.get)
        if step >= 200:
            for a in asked:
                counts[a] += 1
    assert counts["w2"] / sum(counts.values()) < 0.15


def test_a_saturated_fast_worker_leaves_work_to_slower_ones():
    m = make_market(2, verify_floor=0.0)
    for step in range(100):
        run_job(m, step * 0.01, honest, latency={"w0": 0.01, "w1": 0.03}.get)
    for w in m.workers.values():
        w.streak = 10 ** 6            # proven beyond doubt: no checks, load alone decides
    # Ten requests in flight at once: the fast one cannot take them all.
    jobs = [m.open_job("s3") for _ in range(10)]
    first = [job.start(1.0) for job in jobs]
    chosen = [addresses[0] for addresses in first]
    assert chosen.count("w1") >= 2
    assert chosen.count("w0") > chosen.count("w1")
    for job in jobs:
        job.abandon()
    assert all(w.in_flight == 0 for w in m.workers.values())


def test_exploration_finds_a_worker_that_became_fast():
    m = make_market(2, verify_floor=0.0)
    now = 0.0
    for step in range(200):
        now += 0.05
        run_job(m, now, honest, latency={"w0": 0.05, "w1": 0.01}.get)
    assert m.workers["w1"].requests > m.workers["w0"].requests
    m.workers["w0"].requests = m.workers["w1"].requests = 0
    for step in range(2000):            # now w0 became ten times faster than w1
        now += 0.05
        run_job(m, now, honest, latency={"w0": 0.001, "w1": 0.01}.get)
    before = m.workers["w0"].requests
    for step in range(300):
        now += 0.05
        run_job(m, now, honest, latency={"w0": 0.001, "w1": 0.01}.get)
    assert m.workers["w0"].requests - before > 200


def test_verification_rate_falls_with_a_streak_and_is_total_on_probation():
    m = make_market(1)
    w = m.workers["w0"]
    assert m.verify_probability(w) == 1.0
    w.streak = m.policy.trust_streak - 1
    assert m.verify_probability(w) == 1.0
    w.streak = 2 * m.policy.trust_streak
    assert m.verify_probability(w) == pytest.approx(0.25)
    w.streak = 10_000
    assert m.verify_probability(w) == m.policy.verify_floor
    w.state = PROBATION
    assert m.verify_probability(w) == 1.0
    oracle = m.add_worker("oracle", trusted=True)
    assert m.verify_probability(oracle) == 0.0


def test_new_workers_are_checked_and_proven_ones_rarely():
    m = make_market(3, seed=1)
    extra = []
    for step in range(2000):
        job, asked = run_job(m, step * 0.01, honest)
        extra.append(len(asked) - 1)
    assert sum(extra[:20]) >= 20                  # every early result checked
    assert sum(extra[-500:]) / 500 < 0.15         # proven workers: near the floor
    assert all(w.state == ACTIVE for w in m.workers.values())


def test_disagreement_goes_to_a_third_worker_and_the_liar_is_shut_out():
    m = make_market(3, seed=2)
    liar = "w1"
    answer = lambda a: ("ok", 13) if a == liar else ("ok", 42)
    for step in range(200):
        job, asked = run_job(m, step * 0.01, answer)
        assert job.outcome == ("ok", 42), (step, asked)
        if m.workers[liar].state == SHUT_OUT:
            break
    w = m.workers[liar]
    assert w.state == SHUT_OUT and w.lost >= 1
    assert w.reputation(m.policy) < m.policy.shut_threshold
    for step in range(50):
        job, asked = run_job(m, 10 + step * 0.01, answer)
        assert liar not in asked


def test_an_oracle_vote_settles_a_dispute():
    m = Market(Policy(), rng=random.Random(3))
    m.add_worker("a")
    m.add_worker("oracle", trusted=True)
    for i in range(5):        # a slow oracle: "a" is the first choice, the oracle checks
        m.observe_latency(m.workers["oracle"], "s3", 0.5, 0.0)
        m.observe_latency(m.workers["a"], "s3", 0.001, 0.0)
    answer = lambda a: ("ok", 1) if a == "oracle" else ("ok", 2)
    job, asked = run_job(m, 0.0, answer)
    assert job.outcome == ("ok", 1)
    assert set(asked) == {"a", "oracle"}
    assert m.workers["a"].state == SHUT_OUT


def test_two_strangers_agreeing_need_a_third_opinion():
    m = make_market(4, seed=4)
    colluders = {"w0", "w1"}
    answer = lambda a: ("ok", -1) if a in colluders else ("ok", 1)
    job = m.open_job("s3")
    first = job.start(0.0)
    assert len(first) == 2
    # Force the worst case: both first answers come from colluders.
    job.outstanding = set()
    for address in first:
        m.workers[address].in_flight -= 1
    job.tried = set(colluders)
    job.outstanding = set(colluders)
    for address in colluders:
        m.workers[address].in_flight += 1
    more = []
    for address in sorted(colluders):
        more += job.on_result(address, answer(address), 0.01, 0.0)
    assert not job.done and len(more) == 1        # 1 + 1 is under the quorum of 3
    while more:
        address = more.pop()
        more += job.on_result(address, answer(address), 0.01, 0.0)
    assert job.done


def test_shut_out_then_probation_then_back():
    m = make_market(3, seed=5, shutout_seconds=10.0, probation_length=5)
    w = m.workers["w2"]
    m.settle({"w0": 1, "w1": 1, "w2": 2}, 1, now=0.0)
    assert w.state == SHUT_OUT and w.shut_until == 10.0
    assert not m.eligible(w, frozenset(), 5.0)
    assert m.eligible(w, frozenset(), 10.0) and w.state == PROBATION
    assert m.verify_probability(w) == 1.0
    for i in range(5):
        m.settle({"w0": 1, "w2": 1}, 1, now=11.0 + i)
    assert w.state == ACTIVE
    # Known as a liar: the next lie shuts it out again, for twice as long.
    m.settle({"w0": 1, "w1": 1, "w2": 2}, 1, now=20.0)
    assert w.state == SHUT_OUT and w.shut_until == 40.0


def test_a_lie_on_probation_shuts_out_at_once():
    m = make_market(3, shutout_seconds=1.0)
    w = m.workers["w2"]
    w.state, w.probation_left, w.agreed = PROBATION, 20, 1000
    m.settle({"w0": 1, "w1": 1, "w2": 2}, 1, now=0.0)
    assert w.state == SHUT_OUT


def test_a_probation_worker_never_answers_alone():
    m = make_market(2, seed=6)
    m.workers["w1"].state = PROBATION
    m.workers["w1"].probation_left = 20
    on_probation = 0
    while m.workers["w1"].state == PROBATION and on_probation < 100:
        on_probation += 1
        job, asked = run_job(m, on_probation * 0.01, honest,
                             latency={"w0": 0.05, "w1": 0.001}.get)
        if "w1" in asked:
            assert len(asked) >= 2
    assert m.workers["w1"].state == ACTIVE    # twenty checked agreements end probation


def test_routing_by_functions():
    m = Market(Policy(), rng=random.Random(7))
    m.add_worker("plain", functions={"+", "map"})
    m.add_worker("hashing", functions={"+", "map", "sha256"})
    assert m.missing_functions({"+", "sha256"}) == set()
    assert m.missing_functions({"+", "nope"}) == {"nope"}
    for step in range(20):
        job, asked = run_job(m, step * 0.01, honest, needs={"sha256"})
        assert asked == ["hashing"]
        assert job.outcome == ("ok", 42)


def test_a_failed_worker_is_replaced_and_backed_off():
    m = make_market(3, seed=8)
    job, asked = run_job(m, 0.0, honest, fail={"w0"})
    assert job.outcome == ("ok", 42)
    assert "w0" not in asked or asked.index("w0") < len(asked) - 1
    if "w0" in asked:
        assert m.workers["w0"].down_until > 0.0
    m.workers["w0"].down_until = 0.0
    # Everyone fails: a bounded number of attempts, then an error, never a hang.
    job, asked = run_job(m, 1.0, honest, fail={"w0", "w1", "w2"})
    assert job.error and job.outcome is None
    assert len(asked) <= 3


def test_retries_are_bounded():
    m = make_market(10, seed=9, max_failures=2)
    job, asked = run_job(m, 0.0, honest, fail={"w%d" % i for i in range(10)})
    assert job.error
    assert len(asked) <= 2 + 1 + 1      # the dispatched pair plus two replacements


def test_records_round_trip():
    m = make_market(1)
    w = m.workers["w0"]
    m.observe_latency(w, "s3", 0.02, 1.0)
    m.observe_latency(w, "s3", 0.04, 2.0)
    w.agreed, w.lost, w.streak, w.state, w.shut_until = 5, 2, 0, SHUT_OUT, 99.0
    back = worker_from_record(worker_record(w))
    assert (back.agreed, back.lost, back.state, back.shut_until) == (5, 2, SHUT_OUT, 99.0)
    assert back.latency["s3"].n == 2
    assert math.isclose(back.latency["s3"].mean, w.latency["s3"].mean)


def test_the_store_keeps_a_liar_shut_out_across_restarts(tmp_path):
    path = str(tmp_path / "rep.sqlite3")
    store = ReputationStore(path)
    m = Market(Policy(), rng=random.Random(10), store=store)
    for a in ("w0", "w1", "w2"):
        m.add_worker(a)
    m.settle({"w0": 1, "w1": 1, "w2": 2}, 1, now=1000.0)
    assert m.workers["w2"].state == SHUT_OUT
    m.settle({"w0": 1, "w1": 1}, 1, now=1001.0)
    m.flush()
    store.close()

    store = ReputationStore(path)
    again = Market(Policy(), rng=random.Random(11), store=store)
    for a in ("w0", "w1", "w2"):
        again.add_worker(a)
    assert again.workers["w2"].state == SHUT_OUT
    assert again.workers["w2"].lost == 1
    assert again.workers["w0"].agreed == 2
    assert not again.eligible(again.workers["w2"], frozenset(), 1001.0)
    store.close()


def test_stats_rows():
    m = make_market(2, seed=12)
    for step in range(10):
        run_job(m, step * 0.01, honest)
    rows = m.stats(1.0)
    assert [r["address"] for r in rows] == ["w0", "w1"]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(r["state"] == ACTIVE and r["latency"] > 0 for r in rows)
    assert sum(r["verified"] for r in rows) > 0


def test_many_workers_use_the_sampled_candidate_path():
    m = Market(Policy(), rng=random.Random(13))
    for i in range(300):
        m.add_worker("n%03d" % i)
    fast = {"n%03d" % i for i in range(0, 300, 30)}
    for step in range(3000):
        run_job(m, step * 0.001, honest,
                latency=lambda a: 0.002 if a in fast else 0.02)
    share = sum(m.workers[a].requests for a in fast) / m.dispatched
    assert share > 0.5


def test_an_overdue_dispatch_is_hedged_and_the_first_answer_serves():
    m = make_market(3, seed=14)
    for w in m.workers.values():
        w.streak = 10 ** 6                    # no checks: one dispatch per request
    m.policy.verify_floor = 0.0
    job = m.open_job("s3")
    [slow] = job.start(0.0)
    assert job.on_slow(slow, 1.0) and len(job.outstanding) == 2
    assert job.on_slow(slow, 1.1) == []       # one replacement per overdue dispatch
    [backup] = job.outstanding - {slow}
    job.on_result(backup, ("ok", 42), 0.01, 1.2)
    assert job.done and job.outcome == ("ok", 42)
    assert m.workers[slow].in_flight == 1     # still counted busy until it answers
    assert job.on_result(slow, ("ok", 42), 2.0, 2.0) == []
    assert m.workers[slow].in_flight == 0
    assert m.workers[slow].latency["s3"].n == 1    # its slowness is remembered


def test_an_overdue_dispatch_that_then_fails_sends_nothing_more():
    m = make_market(3, seed=15)
    job = m.open_job("s3")
    job.start(0.0)
    primary = job.primary
    more = job.on_slow(primary, 1.0)
    assert len(more) == 1
    assert job.on_failure(primary, 1.5) == []
    pending = list(job.outstanding)
    for _ in range(20):
        if not pending:
            break
        address = pending.pop()
        pending += job.on_result(address, ("ok", 1), 0.01, 2.0)
    assert job.done and job.outcome == ("ok", 1)
    assert primary not in job.outcomes and m.workers[primary].failures == 1


def test_one_workers_word_decides_but_punishes_nobody():
    m = make_market(2, seed=16)
    m.workers["w0"].streak = 1000                 # proven: its vote weighs 2
    answer = lambda a: ("ok", 1) if a == "w0" else ("ok", 2)
    job = m.open_job("s3")
    job.primary = "w1"
    job.checked = True
    for w in (m.workers["w0"], m.workers["w1"]):
        job._dispatch(w, 0.0)
    for address in ("w1", "w0"):
        job.on_result(address, answer(address), 0.01, 0.0)
    assert job.done and job.outcome == ("ok", 1)  # nobody left to ask: the heavier word
    assert m.workers["w1"].lost == 0 and m.workers["w1"].state == ACTIVE
    assert m.workers["w0"].agreed == 0


def test_two_strangers_disagreeing_alone_is_an_error_not_a_guess():
    m = make_market(2, seed=17)
    job = m.open_job("s3")
    job.checked = True
    for w in (m.workers["w0"], m.workers["w1"]):
        job._dispatch(w, 0.0)
    job.on_result("w0", ("ok", 1), 0.01, 0.0)
    job.on_result("w1", ("ok", 2), 0.01, 0.0)
    assert job.done and job.error and job.outcome is None


def test_a_limit_is_no_vote_and_a_timeout_is_an_availability_penalty():
    m = make_market(3, seed=18)
    job = m.open_job("s3")
    pending = list(job.start(0.0))
    assert len(pending) == 2                       # strangers: checked
    slow = pending[0]
    pending = pending[1:] + job.on_limit(slow, "timeout", 0.2, 0.0)
    for _ in range(10):
        if not pending:
            break
        pending += job.on_result(pending.pop(0), ("ok", 42), 0.01, 0.0)
    assert job.done and job.outcome == ("ok", 42)
    w = m.workers[slow]
    assert w.lost == 0 and w.state == ACTIVE and w.failures == 0
    assert w.unavailability(m.policy, 0.0) == 1.0
    half = m.policy.unavailable_half_life
    assert w.unavailability(m.policy, half) == pytest.approx(0.5)   # it decays
    # The penalty is in the score: the same worker, penalised, scores worse.
    assert m.score(w, "s3", 0.0, sample=False) > m.score(m.workers["w2"] if slow != "w2"
                                                         else m.workers["w1"], "s3", 0.0,
                                                         sample=False)
    # ...and it persists with the rest of the record.
    assert worker_from_record(worker_record(w)).unavailable == 1.0


def test_every_worker_over_the_limit_is_the_programs_limit_and_nobodys_fault():
    m = make_market(3, seed=19)
    job = m.open_job("s3")
    pending = list(job.start(0.0))
    for _ in range(10):
        if not pending:
            break
        pending += job.on_limit(pending.pop(0), "max_steps", 0.01, 0.0)
    assert job.done and job.outcome == ("error", "LimitExceeded", "max_steps")
    assert job.error is None
    for w in m.workers.values():
        assert w.lost == 0 and w.agreed == 0 and w.unavailable == 0


def test_old_stores_gain_the_availability_columns(tmp_path):
    import sqlite3
    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE workers (address TEXT PRIMARY KEY, state TEXT NOT NULL, "
               "agreed INTEGER NOT NULL DEFAULT 0, lost INTEGER NOT NULL DEFAULT 0, "
               "streak INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0, "
               "completed INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, "
               "shut_until REAL NOT NULL DEFAULT 0, shutouts INTEGER NOT NULL DEFAULT 0, "
               "probation_left INTEGER NOT NULL DEFAULT 0, trusted INTEGER NOT NULL "
               "DEFAULT 0, estimates TEXT NOT NULL DEFAULT '{}', updated REAL)")
    db.execute("INSERT INTO workers (address, state, agreed) VALUES ('a:1', 'active', 5)")
    db.commit()
    db.close()
    store = ReputationStore(path)
    (record,) = store.load()
    assert record["agreed"] == 5 and record["unavailable"] == 0
    store.close()


def test_sybils_cannot_outvote_established_workers():
    """Five new identities that agree on a wrong answer against three established honest
    workers: never a verdict for them, and they never earn weight by agreeing."""
    m = make_market(0, seed=20, establish_after=10)
    for i in range(3):
        w = m.add_worker("h%d" % i)
        w.confirmed = w.agreed = 10                 # established by checked work
    sybils = ["s%d" % i for i in range(5)]
    for a in sybils:
        m.add_worker(a)
    truth, lie = ("ok", 42), ("ok", 43)
    answer = lambda a: lie if a.startswith("s") else truth
    wrong = 0
    for step in range(300):
        job, _ = run_job(m, float(step), answer)
        if job.outcome == lie:
            wrong += 1
        elif job.outcome == truth:
            assert job.verified_by in ("independent-node", "spot-checked", "none")
    assert wrong == 0
    for a in sybils:
        assert not m.established(m.workers[a]) and m.vote_weight(m.workers[a]) == 0
        assert m.workers[a].confirmed == 0
    assert all(m.workers["h%d" % i].state == ACTIVE and m.workers["h%d" % i].lost == 0
               for i in range(3))


def test_new_identities_agreeing_alone_decide_nothing_until_confirmed():
    m = make_market(3, seed=21, establish_after=10)
    # Where the caller can check (a pure program: the broker's engine), it must.
    job, asked = run_job(m, 0.0, honest, local_check=True)
    assert job.outcome == ("ok", 42) and job.verified_by == "none"   # unverified
    # Where it cannot, and nobody established is there (a fresh deployment): their
    # headcount serves, marked as such, and confirms nobody.
    job, asked = run_job(m, 0.0, honest)
    assert job.outcome == ("ok", 42) and job.verified_by == "unconfirmed-nodes"
    assert all(w.confirmed == 0 for w in m.workers.values())
    # The caller's own check (the broker's engine) confirms them: settle.
    for _ in range(10):
        m.settle({a: ("ok", 42) for a in m.workers}, ("ok", 42), 0.0)
    assert all(m.established(w) for w in m.workers.values())
    job, _ = run_job(m, 1.0, honest)
    assert job.verified_by == "independent-node"


def test_late_sybils_in_the_simulator_get_no_wrong_result_through():
    """bench/market_sim.py's sybil scenario, small: 30% of 100 nodes are colluding
    identities that join after 20% of the requests and all give the same wrong answer;
    the market as shipped lets none of it through (the broker's engine settles the
    verdicts no established worker backs)."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    import market_sim

    nodes = market_sim.make_sybil_nodes(100, 0.30, 3, seed=1, joins_at=0.20)
    sybils = [n for n in nodes if n.role == market_sim.SYBIL]
    assert len(sybils) == 30
    market, records = market_sim.simulate(nodes, 3, 2000, 0.25, Policy(), seed=1)
    assert len(records) == 2000
    assert sum(n.lies for n in sybils) > 100               # they joined, and were asked
    assert all(market.workers[n.address].state != ACTIVE for n in sybils)
    assert market_sim.summarise(records)["wrong"] == 0
    # The same Sybils with every vote counting from the start get wrong results through.
    market, records = market_sim.simulate(nodes, 3, 2000, 0.25,
                                          Policy(establish_after=0), seed=1)
    assert market_sim.summarise(records)["wrong"] > 0
