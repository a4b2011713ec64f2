"""One replica of the sync-round tests: a round every second, one JSON line per round on stdout.

``--ghost-first``: before that, one round (numbered -1, which no other replica uses) whose other
member never joins the gather, so that this replica's round fails alone (a member killed
mid-round does that to the ones left)."""

import json
import sys
import time

from streamssl.config import DistributedConfig
from streamssl.distributed.rounds import SyncGroup


def main() -> None:
    rank, world, address = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    config = DistributedConfig(world_size=world, rank=rank, address=address, sync_every_s=1.0, timeout_s=3.0)
    group = SyncGroup(config)
    rounds = []
    if "--ghost-first" in sys.argv:
        while True:  # rank 0 hosts the rendezvous: once it is up
            try:
                store = group._rendezvous()
                break
            except OSError:
                time.sleep(0.2)
        # The ghost takes its place in round -1 first, as a member arriving does, and never gathers.
        store.set(f"streamssl/-1/m{store.add('streamssl/-1/n', 1)}", "ghost")
        rounds.append(-1)
    while True:
        r = rounds.pop() if rounds else group.wait_for_next(lambda s: time.sleep(s) or False)
        result = group.round({"member": group.member, "round": r, "rows": [[rank, r]]}, r)
        print(json.dumps({"round": r, "outcome": result.outcome, "members": result.members, "member": group.member,
                          "payloads": result.payloads, "seconds": round(result.seconds, 3), "error": result.error}),
              flush=True)


if __name__ == "__main__":
    main()
