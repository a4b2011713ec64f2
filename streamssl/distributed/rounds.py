"""Sync rounds among the replicas of one consumer group, over torch.distributed.

Every ``sync_every_s`` each replica offers a payload (plain data: the labelled rows it learned
since the last round, the parameters to average) and gets back those of every replica that took
part in the same round. Rounds are named by the wall clock, ``floor(time / sync_every_s)``, so
replicas need no other agreement to meet in one.

**Who takes part** is decided through the rendezvous, a torch.distributed ``TCPStore`` that
rank 0 hosts: each replica arriving at round *r* takes a number from the round's counter, and
once all ``world_size`` have arrived, or a join window has passed, the first proposal of the
member list is the one every replica uses (``compare_set``). A replica that arrives after that
sits the round out (``late``); one alone does not exchange (``alone``).

**The payloads** travel over a gloo process group formed for the round by its members
(:func:`all_gather`). A member that dies mid-round breaks its connections and fails the
round for the others at once; one that stalls fails it after ``timeout_s``. Either way the
round is skipped (``failed``/``timeout``), the group is destroyed, and the next round forms
from those present: a replica that comes back joins again. If rank 0 is gone, so is the
rendezvous: rounds are ``unreachable`` until it is back, and the replicas go on serving.

A round blocks for at most about ``2 * timeout_s``: call :meth:`SyncGroup.round` from a
thread of its own, never from the loop that serves events.

Examples
--------
>>> from streamssl.config import DistributedConfig
>>> from streamssl.testing.broker import free_port
>>> group = SyncGroup(DistributedConfig(world_size=1, rank=0, address=f"127.0.0.1:{free_port()}"))
>>> r = group.round({"rows": 3})
>>> r.outcome, r.payloads
('alone', [{'rows': 3}])
>>> group.close()
"""

from __future__ import annotations

import json
import math
import pickle
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from ..config import DistributedConfig


@dataclass
class Round:
    """What one round came to for this replica."""

    id: int
    outcome: str  # ok, alone, late, failed, timeout, unreachable
    members: list[str] = field(default_factory=list)  # in rank order, for this round
    payloads: list = field(default_factory=list)  # one per member, in members' order (own included)
    seconds: float = 0.0
    error: str | None = None


class SyncGroup:
    """This replica's part in the sync rounds of ``config.world_size`` replicas.

    ``member`` names this replica in rounds (unique per process start; default: rank and a
    random suffix, so a restarted replica is a new member); ``clock`` gives wall time."""

    def __init__(self, config: DistributedConfig, rank: int | None = None, member: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.rank = config.resolved_rank() if rank is None else rank
        self.member = member or f"rank{self.rank}-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        host, _, port = config.address.rpartition(":")
        self.host, self.port = host, int(port)
        self._store: dist.TCPStore | None = None
        self._host: dist.TCPStore | None = None  # rank 0's server, kept for the process's life
        self.last: Round | None = None

    # -------------------------------------------------------------- rendezvous
    def _rendezvous(self) -> dist.TCPStore:
        if self._store is None:
            timeout = timedelta(seconds=self.config.timeout_s)
            if self.rank == 0:
                if self._host is None:
                    self._host = dist.TCPStore(self.host, self.port, None, True, timeout=timeout,
                                               wait_for_workers=False)
                self._store = self._host
            else:
                # Rank 0 down refuses at once: find out before TCPStore's connect, which retries
                # for the whole timeout (and must not be left running when the process exits).
                with socket.create_connection((self.host, self.port), timeout=min(2.0, self.config.timeout_s)):
                    pass
                self._store = dist.TCPStore(self.host, self.port, None, False, timeout=timeout)
        return self._store

    def round_id(self) -> int:
        """The round the clock is in now."""
        return math.floor(self.clock() / self.config.sync_every_s)

    def wait_for_next(self, stop: Callable[[float], bool]) -> int | None:
        """Wait for the next round's start (``stop(seconds)`` waits, returning True to give
        up); the round's id, or ``None`` when stopped."""
        nxt = self.round_id() + 1
        while (left := nxt * self.config.sync_every_s - self.clock()) > 0:
            if stop(min(left, 1.0)):
                return None
        return nxt

    # -------------------------------------------------------------- one round
    def round(self, payload: Any, round_id: int | None = None) -> Round:
        """Take part in round ``round_id`` (default: the current one) with ``payload``."""
        r = self.round_id() if round_id is None else round_id
        t0 = time.perf_counter()
        try:
            store = self._rendezvous()
            members = self._members(store, r)
        except Exception as exc:  # noqa: BLE001 -- rank 0 gone or unreachable: next round tries again
            self._store = None
            return self._done(Round(r, "unreachable", error=f"{type(exc).__name__}: {exc}"), t0)
        if self.member not in members:
            return self._done(Round(r, "late", members), t0)
        if len(members) == 1:
            return self._done(Round(r, "alone", members, [payload]), t0)
        try:
            gathered = all_gather(dist.PrefixStore(f"streamssl/{r}/pg", store), members.index(self.member),
                                  len(members), payload, timedelta(seconds=self.config.timeout_s))
            return self._done(Round(r, "ok", members, gathered), t0)
        except Exception as exc:  # noqa: BLE001 -- a member died or stalled: the round is skipped
            outcome = "timeout" if "timeout" in str(exc).lower() or "timed out" in str(exc).lower() else "failed"
            return self._done(Round(r, outcome, members, error=f"{type(exc).__name__}: {exc}"[:500]), t0)
        finally:
            if members and members[0] == self.member:
                self._forget(store, r - 2)

    def _members(self, store: dist.TCPStore, r: int) -> list[str]:
        """The members of round ``r``, as agreed through the rendezvous (see the module docstring)."""
        key = f"streamssl/{r}"
        n = store.add(f"{key}/n", 1)
        store.set(f"{key}/m{n}", self.member)
        # The join window: half a round, and no longer than the timeout.
        deadline = time.monotonic() + min(self.config.sync_every_s, self.config.timeout_s) / 2
        while (arrived := store.add(f"{key}/n", 0)) < self.config.world_size and time.monotonic() < deadline:
            if store.check([f"{key}/members"]):
                break
            time.sleep(0.01)
        names = [f"{key}/m{i}" for i in range(1, arrived + 1)]
        store.wait(names, timedelta(seconds=self.config.timeout_s))
        proposal = json.dumps([store.get(k).decode() for k in names])
        return json.loads(store.compare_set(f"{key}/members", "", proposal))

    def _forget(self, store: dist.TCPStore, r: int) -> None:
        """Drop an old round's keys from the rendezvous (best effort)."""
        key = f"streamssl/{r}"
        try:
            n = store.add(f"{key}/n", 0)
            for k in [f"{key}/n", f"{key}/members", *(f"{key}/m{i}" for i in range(1, n + 1))]:
                store.delete_key(k)
        except Exception:  # noqa: BLE001 -- the keys are small; a later round's cleanup is not needed
            pass

    def _done(self, result: Round, t0: float) -> Round:
        result.seconds = time.perf_counter() - t0
        self.last = result
        return result

    def close(self) -> None:
        self._store = None
        self._host = None


def all_gather(store: dist.Store, rank: int, size: int, payload: Any, timeout: timedelta) -> list:
    """Every member's ``payload`` (picklable), in rank order, over a gloo group of its own on
    ``store``: two collectives, the sizes, then the pickles padded to the longest.

    The group is not torch's default one on purpose: ``init_process_group`` names it by a
    process-wide counter that a start which times out advances without a reset, so a replica
    whose round failed alone (a member died) would look for the others under another name in
    every round after.
    """
    group = dist.ProcessGroupGloo(store, rank, size, timeout)
    try:
        data = torch.frombuffer(bytearray(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)), dtype=torch.uint8)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(size)]
        group.allgather([sizes], [torch.tensor([len(data)], dtype=torch.int64)]).wait()
        longest = max(int(n) for n in sizes)
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[:len(data)] = data
        out = [torch.empty(longest, dtype=torch.uint8) for _ in range(size)]
        group.allgather([out], [padded]).wait()
        return [pickle.loads(o[:int(n)].numpy().tobytes()) for o, n in zip(out, sizes)]
    finally:
        group.shutdown()
