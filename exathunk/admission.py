"""Admission control: who gets in when a node or a broker is full (issue 13, item 2).

Owns the policies, not the mechanics: the server (exathunk.server's ThriftServer and
ExecutionHandler) and the broker (exathunk.broker) keep their own tables and locks and
ask this module whom to close or whom to refuse.

- Connections (``pick_victim``): when ``max_connections`` are open, a new connection is
  not refused; the least recently active connection that is not in the middle of a
  request is closed to make room.  So connections that each send a cheap call now and
  then cannot hold every slot: a new client is served at once, whatever the others
  hold; only when every open connection is running a request is a new one refused.
- Pending thunks (``ThunkQuota``): a client (its connection) may hold at most
  ``per_client`` submitted, unfetched thunks; beyond that its own submits are
  Overloaded and nobody else's are.  When the whole table is full, only a client below
  its fair share (the table's capacity over the clients holding pending thunks) may
  still add one: the heaviest clients are refused; nobody's pending result is evicted.
- Who the client is (``current``, ``current_client``): the connection serving the
  call on this thread (the transport sets ``current.client`` and ``current.peer`` when a
  connection's thread starts; with authentication on, the token is one shared secret,
  so the connection is the identity).
- Expired results (``ExpiredIds``): a bounded memory of the ids of results dropped from
  a table (by age, or fetched results dropped under pressure), so that fetching one is
  the declared ``Expired`` error, distinct from an id that was never issued.
"""

from __future__ import annotations

import collections
import threading
from typing import Hashable, Mapping


# The client of the call this thread is serving: ThriftServer._dispatch sets
# ``current.client`` (its connection's id); None outside a call (the node's own work).
current = threading.local()


def current_client():
    return getattr(current, "client", None)


def pick_victim(activity: Mapping[Hashable, float], busy: set) -> Hashable | None:
    """The connection to close so that a new one can be admitted: the one whose last
    activity (a monotonic time: accepted, or a request begun or answered) is the oldest
    among those not in the middle of a request; None when every one is busy."""
    victim, oldest = None, None
    for conn, last in activity.items():
        if conn in busy:
            continue
        if oldest is None or last < oldest:
            victim, oldest = conn, last
    return victim


class ThunkQuota:
    """Pending (submitted, unfetched) thunks per client.  Not thread-safe: the caller
    holds its table's lock around ``refusal``/``take``/``release``."""

    def __init__(self, per_client: int, capacity: int):
        self.per_client = max(1, int(per_client))
        self.capacity = max(1, int(capacity))
        self.counts: dict = {}

    def refusal(self, client, table_size: int) -> str | None:
        """Why ``client`` may not add a thunk to a table holding ``table_size`` entries
        (the message of an Overloaded), or None when it may."""
        n = self.counts.get(client, 0)
        if n >= self.per_client:
            return (f"this client has {n} submitted thunks not yet fetched, its quota "
                    f"(max_thunks_per_client {self.per_client}): fetch some first")
        if table_size >= self.capacity:
            clients = len(self.counts) + (0 if client in self.counts else 1)
            share = self.capacity // max(1, clients)
            if n >= share or table_size >= 2 * self.capacity:
                return (f"thunk table full ({table_size} of {self.capacity}) and this "
                        f"client holds {n} unfetched thunks, at least its share {share}")
        return None

    def take(self, client) -> None:
        self.counts[client] = self.counts.get(client, 0) + 1

    def release(self, client) -> None:
        n = self.counts.get(client, 0) - 1
        if n > 0:
            self.counts[client] = n
        else:
            self.counts.pop(client, None)


class ExpiredIds:
    """The ids of the last ``capacity`` results dropped from a table."""

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self._ids: collections.OrderedDict = collections.OrderedDict()

    def add(self, tid) -> None:
        self._ids[tid] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def __contains__(self, tid) -> bool:
        return tid in self._ids


EXPIRED_KIND = "Expired"


def expired_message(tid, ttl: float) -> str:
    return (f"thunk {tid!r} has expired: its result was kept {ttl:g} s after it finished "
            "(thunk_ttl) and is gone; submit it again")
