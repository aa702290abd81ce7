"""Window policy decisions per second (pure domain code, one core).

    .venv/bin/python bench/outbound_policy.py [N]
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from parley_common.events.common import ChannelType, SenderKind
from parley_outbound.domain.window import MessageKind, PricingCategory, SendIntent, WindowFacts, decide


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rng = random.Random(7)
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    cases = [
        (SendIntent(rng.choice(list(ChannelType)), rng.choice(list(SenderKind)), rng.choice(list(MessageKind)),
                    rng.choice(list(PricingCategory))),
         WindowFacts(last_customer_at=now - timedelta(seconds=rng.randint(0, 10 * 86400)),
                     free_entry_at=now - timedelta(hours=rng.randint(0, 100)) if rng.random() < 0.2 else None,
                     subscribed=rng.random() < 0.8, blocked=rng.random() < 0.01))
        for _ in range(1000)
    ]
    started = time.perf_counter()
    for index in range(count):
        intent, facts = cases[index % 1000]
        decide(intent, facts, now)
    elapsed = time.perf_counter() - started
    print(f"window policy: {count} decisions in {elapsed:.2f} s = {count / elapsed:,.0f} decisions/s")


if __name__ == "__main__":
    main()
