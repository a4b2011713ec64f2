"""Sync rounds among replica processes on loopback (torch.distributed: TCPStore and gloo):
every member of a round gets the same payloads; a replica killed mid-stream stops nobody, and
one that comes back joins again."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streamssl.testing.broker import free_port
from streamssl.testing.daemon import wait_for

REPLICA = Path(__file__).with_name("replica.py")


class Replica:
    def __init__(self, rank: int, world: int, address: str, log: Path, *flags: str) -> None:
        self.log, self.address = log, address
        with open(log, "ab") as f:
            self.process = subprocess.Popen([sys.executable, str(REPLICA), str(rank), str(world), address, *flags],
                                            stdout=f, stderr=subprocess.DEVNULL)

    def rounds(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self, sig=signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def start(n: int, tmp_path: Path) -> list[Replica]:
    """``n`` replicas of one group, meeting at a fresh loopback address, each logging to tmp_path."""
    address = f"127.0.0.1:{free_port()}"
    return [Replica(rank, n, address, tmp_path / f"r{rank}.log") for rank in range(n)]


def ok_with(replica: Replica, size: int, after: int = -1) -> list[dict]:
    return [r for r in replica.rounds() if r["outcome"] == "ok" and len(r["members"]) == size and r["round"] > after]


@pytest.mark.slow
def test_replicas_gather_the_same_payloads_go_on_without_a_killed_one_and_take_it_back(tmp_path):
    replicas = start(3, tmp_path)
    address = replicas[0].address
    try:
        wait_for(lambda: all(ok_with(r, 3) for r in replicas), 120, "a round of all three")
        # Every member of a round got the same payloads, in the same (rank) order.
        first = {r["round"]: r for r in ok_with(replicas[0], 3)}
        common = [r for r in ok_with(replicas[1], 3) + ok_with(replicas[2], 3) if r["round"] in first]
        assert common, "no round seen by two replicas"
        for r in common:
            assert r["members"] == first[r["round"]]["members"] and r["payloads"] == first[r["round"]]["payloads"]
            assert sorted(p["member"] for p in r["payloads"]) == sorted(r["members"])

        replicas[2].stop()
        killed_at = max(r["round"] for r in replicas[0].rounds())
        # The two left form rounds of two within a few timeouts; no round of theirs hangs.
        wait_for(lambda: all(ok_with(r, 2, killed_at) for r in replicas[:2]), 60, "rounds of the two left")
        for r in replicas[:2]:
            assert max(x["seconds"] for x in r.rounds()) < 2 * 3.0 + 2.0
        back = max(r["round"] for r in replicas[0].rounds())
        replicas[2] = Replica(2, 3, address, tmp_path / "r2-again.log")
        wait_for(lambda: all(ok_with(r, 3, back) for r in replicas), 120, "the restarted replica to join again")
        again = ok_with(replicas[2], 3, back)[-1]
        assert again["member"] in again["members"] and len(set(again["members"])) == 3
    finally:
        for r in replicas:
            r.stop()
    outcomes = {}
    for r in replicas[:2]:
        for x in r.rounds():
            outcomes[x["outcome"]] = outcomes.get(x["outcome"], 0) + 1
    print(f"\nround outcomes of the two that stayed: {outcomes}")


@pytest.mark.slow
def test_while_rank_0_and_its_rendezvous_are_gone_the_others_skip_rounds_then_meet_again(tmp_path):
    replicas = start(2, tmp_path)
    address = replicas[0].address
    try:
        wait_for(lambda: all(ok_with(r, 2) for r in replicas), 120, "a round of both")
        replicas[0].stop()
        gone_at = max(r["round"] for r in replicas[1].rounds())
        wait_for(lambda: any(r["outcome"] == "unreachable" and r["round"] > gone_at for r in replicas[1].rounds()),
                   60, "rank 1 to find the rendezvous gone")
        assert replicas[1].process.poll() is None  # still running, rounds skipped
        back = max(r["round"] for r in replicas[1].rounds())
        replicas[0] = Replica(0, 2, address, tmp_path / "r0-again.log")
        wait_for(lambda: all(ok_with(r, 2, back) for r in replicas), 120, "both to meet again")
    finally:
        for r in replicas:
            r.stop()


@pytest.mark.slow
def test_a_round_failed_by_one_replica_alone_does_not_keep_it_from_the_next(tmp_path):
    """A member that dies mid-round fails the round for some of those left and not for others
    (they sat it out): whatever a failed round leaves behind must not part them for good."""
    address = f"127.0.0.1:{free_port()}"
    replicas = [Replica(0, 3, address, tmp_path / "r0.log"), Replica(1, 3, address, tmp_path / "r1.log", "--ghost-first")]
    try:
        wait_for(lambda: all(ok_with(r, 2) for r in replicas), 60, "a round of the two after one failed alone")
    finally:
        for r in replicas:
            r.stop()
    first = replicas[1].rounds()[0]
    assert first["round"] == -1 and first["outcome"] == "timeout" and "ghost" in first["members"], first
