"""A namespace of the PostgreSQL tier costs what it holds: the keyword search reads index entries of its own
namespace only (rows counted from EXPLAIN ANALYZE, not timed), and ranks the same beside other namespaces."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from integration.backends import require_postgres, unique_table

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.postgres import PostgresTier, _tsquery_text

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


@pytest.fixture
def tiers() -> Iterator[list[PostgresTier]]:
    dsn = require_postgres()
    made: list[PostgresTier] = []
    yield made
    for t in made[1:]:
        t.close()
    if made:
        made[0].drop_tables()
        made[0].close()
    del dsn


def fill(tier: PostgresTier, n: int, seed: int) -> None:
    rng = random.Random(seed)
    tier.put_many([MemoryEntry(f"k{i}", " ".join(rng.choices(WORDS, k=5))) for i in range(n)])


def leaf_rows(plan: dict[str, Any]) -> int:
    """Rows the scans at the leaves of *plan* produced (index entries or heap rows read)."""
    children = plan.get("Plans", [])
    if not children:
        return int(plan.get("Actual Rows", 0)) * int(plan.get("Actual Loops", 1))
    return sum(leaf_rows(c) for c in children)


def examined(tier: PostgresTier, query: str) -> int:
    text = _tsquery_text(query)
    with tier.pool.connection() as conn:
        conn.execute("ANALYZE " + json.dumps(tier.table))  # a quoted, generated identifier
        stmt = tier._q["search"].as_string(conn)
        params = (text, tier.namespace, tier.namespace, text, 0.0, 10)
        out = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + stmt, params).fetchone()[0]
    return leaf_rows(out[0]["Plan"])


def test_search_reads_its_namespace_only_and_ranks_alike(tiers):
    dsn = require_postgres()
    table = unique_table()
    target = PostgresTier(dsn, table=table, namespace="target", max_size=2)
    tiers.append(target)
    fill(target, 40, seed=1)
    queries = ["alpha bravo", "hotel", "charlie delta echo"]
    alone = {q: [(e.key, round(s, 6)) for e, s in target.keyword_search(q)] for q in queries}
    for n in range(10):  # 10 other namespaces x 300 entries of the same words: 75x the target
        other = PostgresTier(dsn, table=table, namespace=f"other-{n}", pool=target.pool)
        tiers.append(other)
        fill(other, 300, seed=10 + n)
    for q in queries:
        assert [(e.key, round(s, 6)) for e, s in target.keyword_search(q)] == alone[q]
        assert examined(target, q) <= 2 * 40  # the namespace's 40 rows, never the other 3,000
