"""Hybrid ranking as pure functions: fuse keyword (BM25) and dense (cosine) candidates, then apply boosts.

The search side gathers candidates (a tier's ``keyword_search``, the semantic index, a neighbour lookup); this
module only ranks them. It does no I/O and imports nothing above :mod:`agentmem_plugin.search`.

Score of a candidate (every term is reported by :func:`rank` in :attr:`RankedHit.components`)::

    fused     = w * bm25_norm + (1 - w) * cos_norm                     # w = RankingConfig.keyword_weight
    own       = fused + entity + recency + importance                  # optional boosts, 0 when off
    context   = contiguity share of the best same-session neighbour    # temporal contiguity, see below
    score     = (1 - g) * (own + context) + g * session                # session = best own score in its session

* ``bm25_norm``: BM25 divided by the query's best BM25 (``"max"``), min-max scaled (``"minmax"``), or
  ``"length"``: ``bm25 / (bm25 + k * n_terms)``, a saturation whose midpoint grows with the number of query terms
  (the length-aware normalisation of mem0's open-source scorer: a long query piles up BM25 without being a
  better match).
* ``cos_norm``: cosine min-max scaled over the candidates (``"minmax"``) or raw (``"raw"``). With a
  ``semantic_gate`` the dense side only counts when the best cosine reaches the gate (no real semantic match:
  keyword only).
* ``entity``: ``entity_weight`` times the share of the query's proper nouns / numbers found in the text.
* ``context`` (temporal contiguity, as :func:`agentmem_plugin.search.spread_to_neighbors`): a candidate receives
  ``context_weight`` times the best own score among its neighbours. ``context_mode="session"`` never spreads
  between neighbours of two different known sessions (metadata ``session``/``session_id``/``conversation_id``/
  ``thread_id``), so a turn never lifts the end of another conversation; where a session is unknown (no such
  metadata, or a neighbour that was not passed as a candidate) it spreads as ``"always"`` does, which spreads
  to every neighbour; ``"off"`` never.
* ``session`` (aggregation): the best own score of the candidate's session (max-pool). With ``session_weight``
  ``g > 0`` turns of the best sessions rise together (the best session first, its turns in their own order).
* ``recency`` = ``recency_weight * 0.5 ** (age / recency_half_life)`` (age = ``now - created_at``) and
  ``importance`` = ``importance_weight * importance`` (in [0, 1]): the generative-agents signals, off by default.
* ``dedup_threshold``: a candidate whose words overlap a better-ranked one's by at least this Jaccard share is
  dropped (near-duplicates, MMR-style).

The defaults are the ranking measured on LongMemEval-S and LoCoMo (development halves) in
``docs/benchmarks.md``; see ``docs/concepts/ranking.md``. :data:`ABLATIONS` lists the variants measured there.

Example:
    >>> hits = rank(
    ...     "where does Ana work",
    ...     [
    ...         Candidate("a", "Ana works at the bakery", bm25=3.0, cosine=0.7),
    ...         Candidate("b", "the bakery opens at 7", bm25=1.0, cosine=0.5),
    ...     ],
    ... )
    >>> [h.key for h in hits]
    ['a', 'b']

"""

from __future__ import annotations

import heapq
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import Any, Literal, Protocol, TypeVar

from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.search import STOP_WORDS, document_text, tokenize, words

__all__ = [
    "ABLATIONS",
    "DEFAULT_CONFIG",
    "GROUP_FIELDS",
    "Candidate",
    "NeighborLookup",
    "RankedHit",
    "RankingConfig",
    "group_of",
    "query_entities",
    "rank",
    "rank_entries",
]

logger = logging.getLogger(__name__)

GROUP_FIELDS: tuple[str, ...] = ("session", "session_id", "conversation_id", "thread_id")
"""Metadata fields that name the session (conversation) a memory belongs to, first found wins."""

NeighborLookup = (
    Mapping[str, Sequence[str]] | Callable[[Sequence[str]], Mapping[str, Sequence[str]]]
)
"""Neighbours of memories: a precomputed ``{key: [neighbour keys]}`` map, or a callable taking keys and
returning that map (for instance ``lambda keys: tier.neighbors(keys, radius)``)."""


@dataclass(frozen=True)
class Candidate:
    """One memory a search found, with what it was found by.

    Args:
        key: The memory's key.
        text: The text it is searched by (for entity overlap and de-duplication).
        bm25: Its BM25 score from the keyword side (higher is better), None when that side did not find it.
        cosine: Its cosine similarity from the dense side, None when that side did not find it.
        created_at: When it was stored (seconds; for recency and sessions by time), or None.
        metadata: Its metadata (the session is read from :data:`GROUP_FIELDS`).
        importance: Its importance in [0, 1] (default: ``metadata["importance"]`` when a number), or None.

    """

    key: str
    text: str = ""
    bm25: float | None = None
    cosine: float | None = None
    created_at: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    importance: float | None = None


@dataclass(frozen=True)
class RankedHit:
    """A ranked memory: its key, final score, and the terms that score is made of.

    Attributes:
        key: The memory's key.
        score: The final score (higher is better).
        components: ``bm25`` and ``cosine`` (raw, None when that side did not find it), ``bm25_norm``,
            ``cos_norm``, ``fused``, and each boost that is on (``entity``, ``recency``, ``importance``,
            ``context``, ``session``).

    """

    key: str
    score: float
    components: dict[str, float | None]


BM25Norm = Literal["max", "minmax", "length"]
CosNorm = Literal["minmax", "raw"]
ContextMode = Literal["off", "always", "session"]


@dataclass(frozen=True)
class RankingConfig:
    """The knobs of :func:`rank` (see the module docstring for the formula).

    Args:
        keyword_weight: ``w``, share of the keyword side in the fusion, in [0, 1].
        bm25_norm: ``"max"``, ``"minmax"`` or ``"length"``.
        length_k: ``k`` of the ``"length"`` normalisation (BM25 per query term at which it gives 0.5).
        cos_norm: ``"minmax"`` or ``"raw"``.
        semantic_gate: Minimum best cosine for the dense side to count (None: always counts).
        adaptive_weight: How much of ``w`` follows the query (0: fixed ``keyword_weight``; 1: fully from the
            query): each side's confidence is how far its best candidate stands above its next ones
            (``1 - mean`` of its normalised top-10 scores), and ``w_query = conf_bm25 / (conf_bm25 + conf_cos)``;
            ``w = (1 - a) * keyword_weight + a * w_query``.
        entity_weight: Boost for the share of the query's proper nouns and numbers found in a text.
        context_mode: ``"session"``, ``"always"`` or ``"off"``.
        context_weight: Share of the best neighbour's score a memory receives.
        session_weight: ``g``, weight of the session's best score (0: no aggregation), in [0, 1].
        recency_weight: Weight of recency (0: off).
        recency_half_life: Age in seconds at which recency halves.
        importance_weight: Weight of importance (0: off).
        dedup_threshold: Word-Jaccard share at which a candidate duplicates a better one (None: keep all).

    Raises:
        InvalidArgumentError: a weight out of range or an unknown mode (naming the bad value).

    """

    keyword_weight: float = 0.55
    bm25_norm: BM25Norm = "minmax"
    length_k: float = 1.0
    cos_norm: CosNorm = "minmax"
    semantic_gate: float | None = None
    adaptive_weight: float = 0.0
    entity_weight: float = 0.1
    context_mode: ContextMode = "session"
    context_weight: float = 0.5
    session_weight: float = 0.0
    recency_weight: float = 0.0
    recency_half_life: float = 30 * 86400.0
    importance_weight: float = 0.0
    dedup_threshold: float | None = None

    def __post_init__(self) -> None:
        _fraction(self.keyword_weight, "keyword_weight")
        _fraction(self.session_weight, "session_weight")
        _fraction(self.adaptive_weight, "adaptive_weight")
        for name in ("entity_weight", "context_weight", "recency_weight", "importance_weight"):
            _non_negative(getattr(self, name), name)
        _positive(self.length_k, "length_k")
        _positive(self.recency_half_life, "recency_half_life")
        if self.bm25_norm not in ("max", "minmax", "length"):
            raise InvalidArgumentError(
                f"bm25_norm must be 'max', 'minmax' or 'length', got {self.bm25_norm!r}"
            )
        if self.cos_norm not in ("minmax", "raw"):
            raise InvalidArgumentError(f"cos_norm must be 'minmax' or 'raw', got {self.cos_norm!r}")
        if self.context_mode not in ("off", "always", "session"):
            raise InvalidArgumentError(
                f"context_mode must be 'off', 'always' or 'session', got {self.context_mode!r}"
            )
        if self.semantic_gate is not None:
            _finite(self.semantic_gate, "semantic_gate")
        if self.dedup_threshold is not None:
            _fraction(self.dedup_threshold, "dedup_threshold")

    def with_(self, **changes: Any) -> RankingConfig:
        """Return a copy with *changes* (checked)."""
        return replace(self, **changes)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _fraction(value: object, name: str) -> None:
    if not 0.0 <= _finite(value, name) <= 1.0:
        raise InvalidArgumentError(f"{name} must be in [0, 1], got {value!r}")


def _non_negative(value: object, name: str) -> None:
    if _finite(value, name) < 0:
        raise InvalidArgumentError(f"{name} must be >= 0, got {value!r}")


def _positive(value: object, name: str) -> None:
    if _finite(value, name) <= 0:
        raise InvalidArgumentError(f"{name} must be > 0, got {value!r}")


DEFAULT_CONFIG = RankingConfig()
"""The default ranking (measured in ``docs/benchmarks.md``)."""

ABLATIONS: dict[str, dict[str, Any]] = {
    "- context (context_mode=off)": {"context_mode": "off"},
    "context across sessions (always)": {"context_mode": "always"},
    "context weight 0.3": {"context_weight": 0.3},
    "+ session max-pool (g=0.3)": {"session_weight": 0.3},
    "bm25 max (not min-max)": {"bm25_norm": "max"},
    "bm25 length-aware (mem0)": {"bm25_norm": "length"},
    "keyword weight 0.5": {"keyword_weight": 0.5},
    "keyword weight 0.6": {"keyword_weight": 0.6},
    "+ query-adaptive weight (a=0.5)": {"adaptive_weight": 0.5},
    "+ semantic gate 0.3": {"semantic_gate": 0.3},
    "- entity overlap (0)": {"entity_weight": 0.0},
    "entity overlap 0.2": {"entity_weight": 0.2},
    "+ dedup (jaccard 0.9)": {"dedup_threshold": 0.9},
    "+ recency 0.1 (30 d)": {"recency_weight": 0.1},
}
"""Variants of :data:`DEFAULT_CONFIG` measured by the benchmarks, by label (options changed)."""


# -- signals -------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\u2019\-]*")
_POSSESSIVE = re.compile(r"['\u2019]s?$")


def query_entities(query: str) -> set[str]:
    """Return the query's proper nouns and numbers, lower-cased and stemmed.

    A proper noun is a capitalised word that is not the first word of the query nor a stop word; a number is a
    word with a digit.

    Example:
        >>> sorted(query_entities("What did Melanie paint in 2022 with Caroline?"))
        ['2022', 'carolin', 'melani']

    """
    out: set[str] = set()
    for i, token in enumerate(_TOKEN.findall(query)):
        word = _POSSESSIVE.sub("", token)
        if not word:
            continue
        lower = word.lower()
        if any(c.isdigit() for c in word) or (
            i > 0 and word[0].isupper() and lower not in STOP_WORDS
        ):
            out.update(tokenize(word))
    return out


def group_of(candidate: Candidate) -> str | None:
    """Return the session a candidate belongs to (its first :data:`GROUP_FIELDS` metadata value), or None."""
    metadata = candidate.metadata
    if not metadata:
        return None
    for name in GROUP_FIELDS:
        value = metadata.get(name)
        if value is not None and value != "":
            return str(value)
    return None


def _importance(candidate: Candidate) -> float:
    value = candidate.importance
    if value is None:
        raw = candidate.metadata.get("importance")
        value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
    if value is None or not math.isfinite(value):
        return 0.0
    return min(max(value, 0.0), 1.0)


def _normalise_bm25(
    scores: Mapping[str, float], mode: BM25Norm, n_terms: int, k: float, complete: bool = False
) -> dict[str, float]:
    if not scores:
        return {}
    if mode == "length":
        mid = k * max(n_terms, 1)
        return {key: s / (s + mid) if s > 0 else 0.0 for key, s in scores.items()}
    hi = max(scores.values())
    if mode == "minmax" and not complete:
        lo = min(scores.values())
        span = hi - lo
        return {key: (s - lo) / span if span > 0 else 1.0 for key, s in scores.items()}
    return {key: s / hi if hi > 0 else 0.0 for key, s in scores.items()}


def _normalise_cosine(scores: Mapping[str, float], mode: CosNorm) -> dict[str, float]:
    if not scores or mode == "raw":
        return {key: max(s, 0.0) for key, s in scores.items()}
    hi, lo = max(scores.values()), min(scores.values())
    span = hi - lo
    return {key: (s - lo) / span if span > 0 else 1.0 for key, s in scores.items()}


def _same_session(a: str | None, b: str | None) -> bool:
    """Whether two memories may share context: same session, or a session unknown on either side."""
    return a is None or b is None or a == b


def _confidence(normalised: Mapping[str, float], depth: int = 10) -> float:
    """How far a side's best candidate stands above its next ones: ``(top - mean of the top depth) / top``."""
    top = sorted(normalised.values(), reverse=True)[:depth]
    if not top or top[0] <= 0:
        return 0.0
    return (top[0] - sum(top) / len(top)) / top[0]


def _word_set(text: str) -> frozenset[str]:
    return frozenset(words(text))


def _entity_finder(entities: set[str]) -> Callable[[str], set[str]]:
    """Return ``fn(text) -> set(tokenize(text)) & entities``, stemming only the words that can be an entity.

    Stemming is most of a ranking's cost (every candidate's text, each new word through the Porter stemmer), yet
    an entity can only come from a word that starts with its first letter: the Porter stemmer changes a word's
    end, never its first character (its steps 2-5 work inside R1, which starts after the second letter; step
    1 rewrites a suffix after a vowel, or ``s``/``ies``/``sses``; the initial ``y`` it marks is restored),
    unless it empties the word (``"s"``). So in an ASCII text only the words starting with an entity's first
    letter are stemmed. Any other text (diacritics are folded before stemming), or an empty entity, takes the
    full path.
    """
    firsts = {e[0] for e in entities if e}
    if "" in entities or not firsts or not all(c.isascii() for c in firsts):
        return lambda text: set(tokenize(text)) & entities
    start = re.compile(
        "(?<![a-z0-9])[" + "".join(re.escape(c) for c in sorted(firsts)) + "][a-z0-9]*"
    )

    entity_of: dict[
        str, str | None
    ] = {}  # word -> the entity it stems to, if any (this query's words)

    def find(text: str) -> set[str]:
        if not text.isascii():
            return set(tokenize(text)) & entities
        # in ASCII text a word ([^\W_]+ of search.WORD) is a run of [a-z0-9] once lower-cased
        found: set[str] = set()
        for word in start.findall(text.lower()):
            if word not in entity_of:
                stems = tokenize(word)  # [] for a stop word, else [stem]
                entity_of[word] = stems[0] if stems and stems[0] in entities else None
            entity = entity_of[word]
            if entity is not None:
                found.add(entity)
        return found

    return find


def _sources(
    near: Mapping[str, Sequence[str]], groups: Mapping[str, str | None], mode: ContextMode
) -> dict[str, set[str]]:
    """Return, for every memory next to another, the memories it may take context from (see :func:`rank`)."""
    # a memory's sources: its neighbours, and the memories it neighbours
    out: dict[str, set[str]] = {}
    for key, others in near.items():
        mine = out.get(key)
        if mine is None:
            out[key] = mine = set()
        mine.update(others)
        for other in others:
            theirs = out.get(other)
            if theirs is None:
                out[other] = theirs = set()
            theirs.add(key)
    if mode == "session":
        group_of = groups.get
        for key, sources in out.items():
            own = group_of(key)
            if own is not None:  # a memory of no known session keeps every source
                out[key] = {s for s in sources if _same_session(own, group_of(s))}
    return out


_WIDEN = 1e-9  # relative slack on the bounds below, far above the rounding of a few float additions


def _plain_terms(
    query: str,
    by_key: Mapping[str, Candidate],
    cfg: RankingConfig,
    now: float | None,
    keyword_complete: bool,
) -> tuple[dict[str, float], dict[str, float], dict[str, tuple[float, float | None, float | None]]]:
    """Return the scaled sides and, per candidate, the terms of its own score that need no text.

    ``(bm25_norm, cos_norm, {key: (fused, recency, importance)})``: everything of a candidate's own score but
    the entity overlap, which reads its text (see :func:`rank`).
    """
    bm25 = {k: c.bm25 for k, c in by_key.items() if c.bm25 is not None and c.bm25 > 0}
    cosine = {k: c.cosine for k, c in by_key.items() if c.cosine is not None}
    bm25_n = _normalise_bm25(
        bm25, cfg.bm25_norm, len(set(tokenize(query))), cfg.length_k, keyword_complete
    )
    cos_n = _normalise_cosine(cosine, cfg.cos_norm)
    w = cfg.keyword_weight
    if cfg.adaptive_weight > 0 and bm25_n and cos_n:
        conf_k, conf_c = _confidence(bm25_n), _confidence(cos_n)
        if conf_k + conf_c > 0:
            w = (1.0 - cfg.adaptive_weight) * w + cfg.adaptive_weight * conf_k / (conf_k + conf_c)
    if cfg.semantic_gate is not None and (not cosine or max(cosine.values()) < cfg.semantic_gate):
        w = 1.0 if bm25 else w  # no real semantic match: rank by keywords
    if cfg.recency_weight > 0 and now is None:
        now = max((c.created_at for c in by_key.values() if c.created_at is not None), default=None)
    plain: dict[str, tuple[float, float | None, float | None]] = {}
    for key, c in by_key.items():
        fused = w * bm25_n.get(key, 0.0) + (1.0 - w) * cos_n.get(key, 0.0)
        recency = importance = None
        if cfg.recency_weight > 0 and now is not None and c.created_at is not None:
            age = max(now - c.created_at, 0.0)
            recency = cfg.recency_weight * 0.5 ** (age / cfg.recency_half_life)
        if cfg.importance_weight > 0:
            importance = cfg.importance_weight * _importance(c)
        plain[key] = (fused, recency, importance)
    return bm25_n, cos_n, plain


def _anchors_that_matter(
    query: str,
    found: Mapping[str, Candidate],
    around: list[str],
    cfg: RankingConfig,
    now: float,
    limit: int,
    keyword_complete: bool,
) -> list[str]:
    """Return the memories of *around* whose neighbours may change the best *limit* of :func:`rank`.

    *found* are the candidates either side found (no neighbour among them yet). Looking up a memory's
    neighbours can change the top only through context: the memory's own context (from neighbours that are
    not candidates, whose own score is at most ``U = entity_weight + recency_weight + importance_weight``, or
    from candidates whose neighbours are not looked up, at most their bound ``H``), and the context it gives
    its neighbours. With ``M`` the largest of ``U`` and those bounds, a memory ``a`` is left out when both
    ``H(a) + context_weight * M`` and ``M + context_weight * H(a)`` stay under the *limit*-th best lower
    bound of a found candidate's final score (found candidates are always shown, and context only adds): then
    neither ``a`` nor anything lifted by ``a`` can be among the best, and no score among them changes. The
    memories are tried from the lowest bound up; bounds are widened as in :func:`_within_reach`.
    Valid only without session pooling or de-duplication (they read every candidate), and with a fixed *now*.
    """
    _, _, plain = _plain_terms(query, found, cfg, now, keyword_complete)
    entity = cfg.entity_weight if cfg.entity_weight > 0 and query_entities(query) else 0.0

    def widen_up(x: float) -> float:
        return x + abs(x) * _WIDEN + _WIDEN

    high: dict[str, float] = {}
    low: list[float] = []
    for key, (fused, recency, importance) in plain.items():
        base = fused + (recency or 0.0) + (importance or 0.0)
        high[key] = widen_up(base + entity)
        low.append(base - abs(base) * _WIDEN - _WIDEN)
    if len(low) < limit:
        return around
    bar = heapq.nlargest(limit, low)[-1]
    weight = cfg.context_weight
    looked_up = set(around)
    bound = widen_up(entity + cfg.recency_weight + cfg.importance_weight)
    bound = max([bound, *(h for k, h in high.items() if k not in looked_up)])
    dropped: set[str] = set()
    for key in sorted(around, key=lambda k: high.get(k, bound)):
        h = high.get(key, bound)
        m = max(bound, h)
        if not (h + weight * m < bar and m + weight * h < bar):
            break
        dropped.add(key)
        bound = m
    return [k for k in around if k not in dropped]


def _within_reach(
    plain: Mapping[str, tuple[float, float | None, float | None]],
    sources_of: Mapping[str, set[str]],
    found: set[str],
    cfg: RankingConfig,
    limit: int,
) -> set[str]:
    """Return the memories whose final score may be among the best *limit*, from bounds on every score.

    A memory's own score lies between its terms without the entity overlap and those plus ``entity_weight``
    (the overlap is a share of it); its context between ``context_weight`` times the best such bound of its
    sources. Every memory whose lower bound is sure to be shown (found by a side, or above 0) bounds the
    *limit*-th best score from below; a memory whose upper bound stays under that cannot be shown, whatever
    its exact score, so ranking only the others (with the exact scores of their sources) gives the same top
    *limit*, scores and order. Bounds are widened by a relative ``1e-9``: rounding never decides.
    """
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    entity = cfg.entity_weight
    down, up = 1.0 - _WIDEN, 1.0 + _WIDEN
    for key, (fused, recency, importance) in plain.items():
        base = fused + (recency or 0.0) + (importance or 0.0)
        low[key] = base * down
        high[key] = (base + entity) * up + _WIDEN
    weight = cfg.context_weight
    none = weight * 0.0  # the context of a memory without sources
    final_low: dict[str, float] = {}
    final_high: dict[str, float] = {}
    low_of, high_of, zero = low.get, high.get, repeat(0.0)
    for key, own_low in low.items():
        if key not in sources_of:
            final_low[key] = (own_low + none) * down
            final_high[key] = (high[key] + none) * up + _WIDEN
    for key, sources in sources_of.items():
        if sources:
            # the best bound among the sources (map: the same max, without a generator frame)
            ctx_low = weight * max(map(low_of, sources, zero))
            ctx_high = weight * max(map(high_of, sources, zero))
        else:
            ctx_low = ctx_high = none
        final_low[key] = (low_of(key, 0.0) + ctx_low) * down
        final_high[key] = (high_of(key, 0.0) + ctx_high) * up + _WIDEN
    shown = [s for key, s in final_low.items() if key in found or s > 0]
    if len(shown) < limit:
        return set(final_high)
    bar = heapq.nlargest(limit, shown)[-1]
    return {key for key, s in final_high.items() if s >= bar}


def _lookup(neighbors: NeighborLookup | None, keys: Sequence[str]) -> Mapping[str, Sequence[str]]:
    if neighbors is None:
        return {}
    if callable(neighbors):
        return neighbors(keys)
    return neighbors


# -- ranking -------------------------------------------------------------------------------------------------------


def rank(
    query: str,
    candidates: Iterable[Candidate],
    *,
    neighbors: NeighborLookup | None = None,
    config: RankingConfig = DEFAULT_CONFIG,
    now: float | None = None,
    limit: int | None = None,
    keyword_complete: bool = False,
) -> list[RankedHit]:
    """Rank *candidates* for *query*, best first, each hit with its score components.

    Args:
        query: The search text (for the number of query terms and the query's entities).
        candidates: Every memory either side found (a key given twice: the later one wins). Memories found by
            neither side may be included (``bm25 = cosine = None``): they can still rise through context or
            their session, and give the ranking their session for ``context_mode="session"``.
        neighbors: Neighbours of the candidates (a map or a lookup callable, see :data:`NeighborLookup`);
            None: no contiguity. Neighbours that are not candidates can enter the ranking through context
            (in ``"session"`` mode only when their session is known, i.e. they were passed as candidates).
        config: The knobs (:data:`DEFAULT_CONFIG` by default).
        now: The current time, for recency (default: the newest ``created_at`` among the candidates).
        limit: Keep the best *limit* hits (None: all).
        keyword_complete: The keyword side returned every memory that matches the query (it was not cut at a
            depth), so every other memory scores 0 there: min-max then scales BM25 from 0, not from the
            weakest match. On a small store this keeps a near-tie of two matches from becoming a 1-to-0 gap.

    Returns:
        Hits, best first; ties broken by key. Memories found by neither side and lifted by nothing (score 0)
        are left out; every candidate a side found is kept, even at score 0 (the minimum of a min-max scale).

    Raises:
        InvalidArgumentError: a negative limit, a non-str query, or a candidate that is not a Candidate.

    """
    if not isinstance(query, str):
        raise InvalidArgumentError(
            f"query must be a str, got {type(query).__name__}: {query!r:.80}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidArgumentError(f"limit must be a non-negative int or None, got {limit!r}")
    by_key: dict[str, Candidate] = {}
    for c in candidates:
        if not isinstance(c, Candidate):
            raise InvalidArgumentError(f"candidates must be Candidate objects, got {c!r:.80}")
        by_key[c.key] = c
    if not by_key or limit == 0:
        return []
    cfg = config
    bm25_n, cos_n, plain = _plain_terms(query, by_key, cfg, now, keyword_complete)
    entities = query_entities(query) if cfg.entity_weight > 0 else set()
    found_in = _entity_finder(entities)
    groups = {key: group_of(c) for key, c in by_key.items()}
    found = {k for k, c in by_key.items() if c.bm25 is not None or c.cosine is not None}
    spread = cfg.context_mode != "off" and cfg.context_weight > 0 and neighbors is not None
    # With a limit (and no session pooling or de-duplication), only the memories that can still reach the top
    # *limit* and their context sources need their exact score: see _within_reach. A lookup callable is
    # asked for the neighbours of the scored memories, which takes every exact score: the full path.
    pruned = bool(entities) and limit is not None and cfg.session_weight == 0
    pruned = pruned and cfg.dedup_threshold is None and not callable(neighbors)
    sources_of: dict[str, set[str]] = {}
    reach: set[str] | None = None
    exact: Iterable[str] = by_key
    if pruned:
        assert limit is not None
        if spread and neighbors is not None and not callable(neighbors):
            sources_of = _sources(neighbors, groups, cfg.context_mode)
        reach = _within_reach(plain, sources_of, found, cfg, limit)
        needed = {k for k in reach if k in by_key}
        for key in reach:
            needed.update(s for s in sources_of.get(key, ()) if s in by_key)
        exact = [k for k in by_key if k in needed]

    # a memory's own score now; the dict of its components (RankedHit.components) only if it is returned
    terms: dict[str, tuple[float, float | None, float | None, float | None]] = {}
    own: dict[str, float] = {}
    for key in exact:
        fused, recency, importance = plain[key]
        total = fused
        boost = None
        if entities:
            boost = cfg.entity_weight * len(found_in(by_key[key].text)) / len(entities)
            total += boost
        if recency is not None:
            total += recency
        if importance is not None:
            total += importance
        terms[key] = (fused, boost, recency, importance)
        own[key] = total

    context: dict[str, float] = {}
    if spread:
        if not pruned:
            scored = [k for k, s in own.items() if s > 0]
            sources_of = _sources(_lookup(neighbors, scored), groups, cfg.context_mode)
        for key, sources in sources_of.items():
            if reach is not None and key not in reach:
                continue  # cannot reach the top: its context is not needed
            best = max((own.get(s, 0.0) for s in sources), default=0.0)
            if best > 0:
                context[key] = cfg.context_weight * best
    for key in context:
        own.setdefault(key, 0.0)
    if reach is not None:  # the exact scores of the sources outside the reach are not final scores
        own = {key: s for key, s in own.items() if key in reach}

    base = {key: own[key] + context.get(key, 0.0) for key in own}
    final = dict(base)
    session_of: dict[str, float] = {}
    if cfg.session_weight > 0:
        g = cfg.session_weight
        best_of: dict[str, float] = {}
        for key, s in base.items():
            grp = groups.get(key)
            if grp is not None and s > best_of.get(grp, 0.0):
                best_of[grp] = s
        for key, s in base.items():
            grp = groups.get(key)
            session = best_of.get(grp, s) if grp is not None else s
            session_of[key] = session
            final[key] = (1.0 - g) * s + g * session

    def components(key: str) -> dict[str, float | None]:
        held = terms.get(key)
        if held is None:  # lifted by context alone
            comp: dict[str, float | None] = {
                "bm25": None,
                "cosine": None,
                "bm25_norm": 0.0,
                "cos_norm": 0.0,
                "fused": 0.0,
            }
        else:
            c = by_key[key]
            fused, boost, recency, importance = held
            comp = {
                "bm25": c.bm25,
                "cosine": c.cosine,
                "bm25_norm": bm25_n.get(key, 0.0),
                "cos_norm": cos_n.get(key, 0.0),
                "fused": fused,
            }
            if boost is not None:
                comp["entity"] = boost
            if recency is not None:
                comp["recency"] = recency
            if importance is not None:
                comp["importance"] = importance
        if key in context:
            comp["context"] = context[key]
        if key in session_of:
            comp["session"] = session_of[key]
        return comp

    order = sorted(
        (k for k, s in final.items() if s > 0 or k in found), key=lambda k: (-final[k], k)
    )
    if cfg.dedup_threshold is not None:
        kept: list[str] = []
        seen: list[frozenset[str]] = []
        for key in order:
            cand = by_key.get(key)
            ws = _word_set(cand.text) if cand is not None else frozenset()
            if ws and any(
                len(ws & other) / len(ws | other) >= cfg.dedup_threshold for other in seen
            ):
                continue
            kept.append(key)
            if ws:
                seen.append(ws)
            if limit is not None and len(kept) >= limit:
                break
        order = kept
    if limit is not None:
        order = order[:limit]
    return [RankedHit(key, final[key], components(key)) for key in order]


class _Stored(Protocol):
    """What :func:`rank_entries` reads of a stored memory (a :class:`~agentmem_plugin.entry.MemoryEntry`)."""

    @property
    def key(self) -> str: ...
    @property
    def value(self) -> Any: ...
    @property
    def tags(self) -> Any: ...
    @property
    def created_at(self) -> float: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...


_E = TypeVar("_E", bound=_Stored)


def _stored_candidate(key: str, e: _Stored, bm25: float | None, cosine: float | None) -> Candidate:
    """Return ``Candidate(key, text of e, bm25, cosine, e.created_at, e.metadata)``, built faster.

    The fields ``Candidate(...)`` would set, without the frozen ``__init__``'s ``object.__setattr__`` per
    field (2.3 against 0.9 us; a search builds hundreds): an equal object with the same fields (a test checks
    it against the constructor).
    """
    c = object.__new__(Candidate)
    value, tags = e.value, e.tags
    # a string without tags: document_text("", value, ()) without its calls
    text = " " + value if type(value) is str and not tags else document_text("", value, tags)
    c.__dict__.update(
        key=key,
        text=text,
        bm25=bm25,
        cosine=cosine,
        created_at=e.created_at,
        metadata=e.metadata,
        importance=None,
    )
    return c


def rank_entries(
    query: str,
    keyword: Sequence[tuple[_E, float]],
    dense: Sequence[tuple[_E, float]],
    *,
    neighbors: Callable[[list[str]], Mapping[str, Sequence[str]]] | None = None,
    fetch: Callable[[list[str]], Iterable[_E | None]] | None = None,
    config: RankingConfig = DEFAULT_CONFIG,
    now: float | None = None,
    limit: int | None = None,
    keyword_complete: bool = False,
    context_candidates: int | None = None,
) -> list[tuple[_E, RankedHit]]:
    """Rank stored memories a search gathered: what :meth:`Memory.search` and ``MemoryManager.search`` run.

    Every memory either side found becomes a :class:`Candidate` (its text: every string of its value and its
    tags). With contiguity on, the neighbours of every candidate are looked up, and those neither side found are
    fetched, so that their session is known, and passed as candidates without scores.

    Args:
        query: The search text.
        keyword: ``(entry, BM25)`` pairs, best first.
        dense: ``(entry, cosine)`` pairs, best first.
        neighbors: ``fn(keys) -> {key: [neighbour keys]}`` (None: no contiguity).
        fetch: ``fn(keys) -> entries`` (None for a missing one): the neighbours neither side found.
        config: The ranking knobs.
        now: The current time, for recency.
        limit: Hits kept (None: all).
        keyword_complete: *keyword* holds every memory that matches (see :func:`rank`).
        context_candidates: Look up the neighbours of only the best *context_candidates* of each side (None:
            of every candidate). A memory deep in both lists passes little to its neighbours (a share of a low
            score), and each neighbour is one more memory to fetch and rank.

    Returns:
        ``(entry, hit)`` pairs, best first.

    Example:
        >>> from agentmem_plugin.entry import MemoryEntry
        >>> a, b = MemoryEntry("a", "Ana works at the bakery"), MemoryEntry("b", "it rains")
        >>> [e.key for e, _ in rank_entries("Ana bakery", [(a, 2.0)], [(a, 0.6), (b, 0.1)])]
        ['a', 'b']

    """
    entries: dict[str, _E] = {}
    for entry, _ in (*keyword, *dense):
        entries.setdefault(entry.key, entry)
    bm25 = {e.key: s for e, s in keyword}
    cosine = {e.key: s for e, s in dense}

    def candidate(key: str, e: _E) -> Candidate:
        return _stored_candidate(key, e, bm25.get(key), cosine.get(key))

    candidates = {key: candidate(key, e) for key, e in entries.items()}
    near: Mapping[str, Sequence[str]] = {}
    if neighbors is not None and config.context_mode != "off" and config.context_weight > 0:
        if context_candidates is None:
            around = list(entries)
        else:
            best = [e.key for e, _ in (*keyword[:context_candidates], *dense[:context_candidates])]
            around = list(dict.fromkeys(best))
        if (
            limit is not None
            and config.session_weight == 0
            and config.dedup_threshold is None
            and (now is not None or config.recency_weight == 0)
        ):
            # only the neighbours that can change the top are read (and ranked)
            around = _anchors_that_matter(
                query, candidates, around, config, now or 0.0, limit, keyword_complete
            )
        near = neighbors(around) if around else {}
        missing = sorted({k for ks in near.values() for k in ks if k not in entries})
        if missing and fetch is not None:
            for near_entry in fetch(missing):
                if near_entry is not None and near_entry.key not in entries:
                    entries[near_entry.key] = near_entry
                    candidates[near_entry.key] = candidate(near_entry.key, near_entry)
    hits = rank(
        query,
        candidates.values(),
        neighbors=near,
        config=config,
        now=now,
        limit=limit,
        keyword_complete=keyword_complete,
    )
    return [(entries[h.key], h) for h in hits if h.key in entries]
