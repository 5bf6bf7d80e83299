"""Seeds for every generation call of an indexing run, derived from (run seed, stage, shard, batch) only.

Never from wall-clock, process id or the order in which shards happen to run: a resumed or multi-process run must
draw exactly the numbers an uninterrupted single-process run draws.
"""

from __future__ import annotations

import numpy as np

STAGE_DOCIDS = 1
STAGE_QUERIES = 2


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed determined by `seed` and the integer `keys` (stage, shard id, batch index...)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *(int(k) for k in keys)]).generate_state(1, np.uint32)
    return int(state[0]) & 0x7FFFFFFF
