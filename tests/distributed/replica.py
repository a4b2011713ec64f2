"""One replica of the sync-round tests: a round every second, one JSON line per round on stdout."""

import json
import sys
import time

from streamssl.config import DistributedConfig
from streamssl.distributed.rounds import SyncGroup


def main() -> None:
    rank, world, address = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    group = SyncGroup(DistributedConfig(world_size=world, rank=rank, address=address, sync_every_s=1.0, timeout_s=3.0))
    while True:
        r = group.wait_for_next(lambda s: time.sleep(s) or False)
        result = group.round({"member": group.member, "round": r, "rows": [[rank, r]]}, r)
        print(json.dumps({"round": r, "outcome": result.outcome, "members": result.members, "member": group.member,
                          "payloads": result.payloads, "seconds": round(result.seconds, 3), "error": result.error}),
              flush=True)


if __name__ == "__main__":
    main()
