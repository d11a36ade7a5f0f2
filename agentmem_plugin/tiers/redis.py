"""A short-term tier on Redis, shared by many processes: capacity, priority-aware LRU and TTL kept atomic.

Layout (every key under ``{prefix}:{namespace}:``, the namespace with ``%`` and ``:`` percent-escaped so that
one namespace's keys can never be read as another's)::

    e:{key}   hash     one entry: value (JSON, zstd above the compression threshold), tags, metadata, times,
                       priority, access_count, last_accessed, insertion sequence; expired by Redis (PEXPIREAT)
    idx       hash     key -> its member in ``lru`` (the set of keys present)
    ver       hash     key -> write version (changes on every write of the key; read by keyword search)
    gen       string   bumped by every write and removal (keyword search skips syncing when unchanged)
    lru       zset     score = priority, member = zero-padded access tick + key: ZRANGE 0 n is the eviction
                       order (lowest priority first, least recently used first within a priority)
    exp       zset     key -> expires_at, by the tier's clock
    tick      string   counter of the access order; a new key's first tick is its insertion sequence
    seq       string   the insertion counter of earlier versions (no longer written; ticks are larger)
    lock      string   the namespace lock (see below)
    meta chg chgseq    the semantic index's model and its change feed (only once an index asked for one)

Design:

* **Every state change is one Lua script** (``register_script``), so no reader ever sees half a write and a
  connection lost mid-write leaves either the whole write or nothing.
* **Time comes from the tier's clock.** ``expires_at`` is stored and compared with ``clock()`` on every read, so
  a fake clock behaves exactly as with the in-memory buffer; Redis expiry (set to the same remaining lifetime
  in real time) only collects the garbage.
* **Eviction hands entries to** ``on_evict`` **before they leave.** A write that fits (after dropping expired
  entries) is applied by one script; so is a write that must evict when there is no ``on_evict`` (the script
  removes the head of ``lru`` after the write: one round trip). A write that must evict takes the namespace
  lock (``SET NX PX``, a random token), lists the victims, calls ``on_evict`` with them, then applies the write and removes the victims in
  one script that first checks the lock is still held. While the lock is held every other writer of the
  namespace (in any process) waits, so the victims handed to ``on_evict`` are exactly the entries removed and
  the count never exceeds the capacity. If ``on_evict`` raises, nothing is written. ``compute`` holds the same
  lock for its read-modify-write. Reads never wait.
* **One round trip for a store and for a get.** A store that fits, or that evicts with no ``on_evict``, is one
  ``EVALSHA``; so is a get, its bookkeeping included (access count, last access, a new place in the LRU order).
  What a call costs beyond the round trip is kept small: a script gets the namespace's base name as its one
  key and builds the others, a write's entries travel as one packed argument, a get's reply is one packed
  string per entry, and a script bumps the generation and asks whether an index is attached once.
* **Keyword search** ranks the live entries with the core's BM25, in an index kept by each process and
  synced before every search from the entries' write versions: only what changed since is fetched again.

Key names are built inside the scripts (from the namespace base they get), so a namespace must live on one Redis
node (standalone, or a replicated primary); Redis Cluster is not supported.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from agentmem_plugin.codec import (
    DEFAULT_COMPRESSION_THRESHOLD,
    decode_json,
    decode_value,
    encode_json,
    encode_value,
)
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    AgentMemError,
    BackendUnavailableError,
    InvalidArgumentError,
    MissingDependencyError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.policies import LRUEvictionPolicy
from agentmem_plugin.search import SearchIndex, document_text
from agentmem_plugin.tiers.base import UNCHANGED, EvictionCallback, Tier, namespace_bounds
from agentmem_plugin.tiers.urls import redact_url

__all__ = ["RedisTier", "redact_url"]

logger = logging.getLogger(__name__)

_SCORE_LIMIT = (
    2**53
)  # priorities beyond +-2**53 share the extreme score (a double holds 53 bits exactly)
_FIELDS = ("v", "t", "md", "c", "x", "l", "p", "ac", "la", "s", "w")
_EXPIRY_GRACE_MS = 250  # Redis collects an entry this long after the clock expired it (clock skew)
_SECRET_PARAMS = frozenset({"password", "pass", "pwd", "passwd"})

# -- Lua ---------------------------------------------------------------------------------------------------------
# KEYS[1] is the namespace's base name ("{prefix}:{namespace}:"); a script derives the keys it uses from it (K:
# 1 lru, 2 idx, 3 exp, 4 tick, 5 lock, 6 meta, 7 chg, 8 chgseq, 9 seq, 10 ver, 11 gen), so a call sends one key
# name instead of eleven. ARGV[1] is always the entry-key prefix ("{prefix}:{namespace}:e:").

_KEYS = """
local K = {}
for i, name in ipairs({'lru', 'idx', 'exp', 'tick', 'lock', 'meta', 'chg', 'chgseq', 'seq', 'ver', 'gen'}) do
  K[i] = KEYS[1] .. name
end
"""

_PRELUDE = (
    _KEYS
    + """
local ep = ARGV[1]
local feed = nil
local function changed(key)
  if feed == nil then feed = redis.call('EXISTS', K[6]) == 1 end  -- asked once: no script records an index
  if feed then
    redis.call('ZADD', K[7], redis.call('INCR', K[8]), key)
  end
end
local bumped = false
local function bump()
  -- a new generation (one per script is enough); after the key was dropped it restarts from the clock, so a
  -- value never comes back
  if bumped then return end
  bumped = true
  if redis.call('INCR', K[11]) == 1 then
    local t = redis.call('TIME')
    redis.call('SET', K[11], t[1] .. string.format('%06d', tonumber(t[2])))
  end
end
local function remove(key, known)
  local m = known or redis.call('HGET', K[2], key)
  local existed = redis.call('DEL', ep .. key)
  if m then
    redis.call('ZREM', K[1], m)
    redis.call('HDEL', K[2], key)
    redis.call('HDEL', K[10], key)
    bump()
  end
  redis.call('ZREM', K[3], key)
  if m or existed == 1 then changed(key) end
end
local function purge(now)
  local keys = redis.call('ZRANGEBYSCORE', K[3], '-inf', now)
  for _, k in ipairs(keys) do remove(k) end
  return keys
end
local function locked(token)
  local holder = redis.call('GET', K[5])
  if token ~= '' then return holder ~= token end
  return holder ~= false
end
local function member(key)
  return string.format('%016d', redis.call('INCR', K[4])) .. key
end
"""
)

# ARGV: ep, now, token, capacity (0: none), n entries, n victims, check capacity ('1'; '2': and evict the
#       overflow here, when no callback must see the victims first; '0': the victims are given), the entries
#       packed in one string (see _unpack: the lengths of n x (key, v, t, md, c, x, l, p, ac, la, score,
#       pexpireat ms, version), a newline, the fields back to back), then the victim keys.
# Returns {-1} when another holder has the lock, {-2, overflow, purged} when the write needs evictions,
# else {0, purged, removed victims}.
_WRITE = (
    _PRELUDE
    + """
local now, token, cap = ARGV[2], ARGV[3], tonumber(ARGV[4])
local n, nv, check = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
if locked(token) then return {-1} end
local R = {}
do
  local blob = ARGV[8]
  local nl = string.find(blob, '\\n', 1, true)
  local pos = nl + 1
  for len in string.gmatch(string.sub(blob, 1, nl - 1), '%d+') do
    local e = pos + tonumber(len)
    R[#R + 1] = string.sub(blob, pos, e - 1)
    pos = e
  end
  if #R ~= n * 13 then return redis.error_reply('agentmem: malformed batch') end
end
local purged = 0
local evict = 0
local olds = nil  -- each entry's member in lru, or false: looked up once, for the capacity check and the write
local function members()
  olds = {}
  local new = 0
  for i = 0, n - 1 do
    olds[i] = redis.call('HGET', K[2], R[1 + i * 13])
    if not olds[i] then new = new + 1 end
  end
  return new
end
if check ~= '0' and cap > 0 then
  local over = redis.call('HLEN', K[2]) + members() - cap
  if over > 0 then
    purged = #purge(now)
    if purged > 0 then over = redis.call('HLEN', K[2]) + members() - cap end
    if over > 0 then
      if check ~= '2' then return {-2, over, purged} end
      evict = over  -- no callback to hand victims to: evict here, in this same atomic script
    end
  end
end
if not olds then members() end
for i = 0, n - 1 do
  local o = 1 + i * 13
  local key = R[o]
  local ek = ep .. key
  local old = olds[i]  -- the batch's keys are distinct: none was written by an earlier one
  local s, expiring = false, false
  if old then
    redis.call('ZREM', K[1], old)
    local f = redis.call('HMGET', ek, 's', 'x')
    s = f[1]
    expiring = not f[1] or (f[2] ~= false and f[2] ~= '')  -- a hash Redis collected had an expiry
  end
  local m = member(key)
  if not s then s = string.sub(m, 1, 16) end  -- a new key: its first tick is its insertion order
  -- every field is overwritten in place (a hash left by a cleared namespace included)
  local added = redis.call('HSET', ek, 'v', R[o + 1], 't', R[o + 2], 'md', R[o + 3], 'c', R[o + 4],
             'x', R[o + 5], 'l', R[o + 6], 'p', R[o + 7], 'ac', R[o + 8], 'la', R[o + 9],
             'ps', R[o + 10], 's', s, 'w', R[o + 12])
  redis.call('HSET', K[10], key, string.sub(m, 1, 16))
  bump()
  redis.call('ZADD', K[1], R[o + 10], m)
  redis.call('HSET', K[2], key, m)
  if R[o + 5] ~= '' then
    redis.call('ZADD', K[3], R[o + 5], key)
    redis.call('PEXPIREAT', ek, R[o + 11])
  else
    -- exp only holds keys of idx: a key new to idx has no expiry to forget, but a hash left behind (HSET
    -- found some of its fields) may have one
    if expiring then redis.call('ZREM', K[3], key) end
    if expiring or (not old and added < 13) then redis.call('PERSIST', ek) end
  end
  changed(key)
end
local removed = 0
for j = 9, 8 + nv do
  local key = ARGV[j]
  if redis.call('HEXISTS', K[2], key) == 1 then removed = removed + 1 end
  remove(key)
end
if evict > 0 then
  -- the batch is in, each entry the most recent of its priority: the victims are the head of lru, exactly
  -- what the callback path's preview_victims picks
  for _, m in ipairs(redis.call('ZRANGE', K[1], 0, evict - 1)) do
    remove(string.sub(m, 17), m)
    removed = removed + 1
  end
end
return {0, purged, removed}
"""
)

# K (derived from KEYS[1]): 1 lru, 2 idx, 3 tick, all a read touches.
# ARGV: ep, now, touch ('1'/'0'), keys...   Returns per key false, or one string: the lengths of the fields
# v, t, md, c, x, l, p, ac, la, w (comma-separated), a newline, then the fields back to back (one bulk reply
# instead of eleven, which is most of what a client spends on a read).
_GET = """
local K = {KEYS[1] .. 'lru', KEYS[1] .. 'idx', KEYS[1] .. 'tick'}
local ep, now, touch = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV do
  local key = ARGV[i]
  local m = redis.call('HGET', K[2], key)
  local r = false
  if m then
    local ek = ep .. key
    local f = redis.call('HMGET', ek, 'v', 't', 'md', 'c', 'x', 'l', 'p', 'ac', 'la', 'w', 'ps')
    if f[1] and (not f[5] or f[5] == '' or tonumber(f[5]) > now) then
      if touch == '1' then
        -- the read's bookkeeping, in this same script: count, time, and a new place in the LRU order
        f[8] = tostring((tonumber(f[8]) or 0) + 1)
        f[9] = ARGV[2]
        redis.call('HSET', ek, 'ac', f[8], 'la', f[9])
        local score = f[11] or redis.call('ZSCORE', K[1], m)
        local nm = string.format('%016d', redis.call('INCR', K[3])) .. key
        redis.call('ZREM', K[1], m)
        redis.call('ZADD', K[1], score, nm)
        redis.call('HSET', K[2], key, nm)
      end
      local lens = {}
      for j = 1, 10 do
        if not f[j] then f[j] = '' end
        lens[j] = #f[j]
      end
      r = table.concat(lens, ',') .. '\\n' .. table.concat(f, '', 1, 10)
    end
  end
  out[#out + 1] = r
end
return out
"""

# ARGV: ep, now.  Returns a flat list: key, then its 11 fields, for every live entry. Index members whose
# entry Redis has already expired are dropped on the way.
_SCAN = (
    _PRELUDE
    + """
local now = tonumber(ARGV[2])
local out = {}
local dead = {}
local all = redis.call('HGETALL', K[2])
for i = 1, #all, 2 do
  local key = all[i]
  local f = redis.call('HMGET', ep .. key, 'v', 't', 'md', 'c', 'x', 'l', 'p', 'ac', 'la', 's', 'w')
  if not f[1] then
    dead[#dead + 1] = key
  elseif f[5] == '' or tonumber(f[5]) > now then
    out[#out + 1] = key
    for j = 1, 11 do out[#out + 1] = f[j] end
  end
end
for _, key in ipairs(dead) do remove(key) end
return out
"""
)

# ARGV: ep, now, the generation the caller knows.  Returns {generation, {key, write version, ...} or false when
# the generation is the caller's (nothing was written or removed since), the keys expired by the clock}: what a
# local keyword index needs to stay in sync.
_VERSIONS = (
    _KEYS
    + """
local gen = redis.call('GET', K[11]) or '0'
local expired = redis.call('ZRANGEBYSCORE', K[3], '-inf', ARGV[2])
if gen == ARGV[3] then return {gen, false, expired} end
return {gen, redis.call('HGETALL', K[10]), expired}
"""
)

# ARGV: ep, now, token, keys...  Returns {-1} when locked by another holder, else {0, live entries removed}.
_DELETE = (
    _PRELUDE
    + """
local now, token = tonumber(ARGV[2]), ARGV[3]
if locked(token) then return {-1} end
local removed = 0
for i = 4, #ARGV do
  local key = ARGV[i]
  if redis.call('HEXISTS', K[2], key) == 1 then
    local x = redis.call('HGET', ep .. key, 'x')
    if x and (x == '' or tonumber(x) > now) then removed = removed + 1 end
  end
  remove(key)
end
return {0, removed}
"""
)

# ARGV: ep, now, token.  Returns {-1} when locked by another holder, else {0, expired keys...}.
_CLEANUP = (
    _PRELUDE
    + """
if locked(ARGV[3]) then return {-1} end
local out = {0}
for _, k in ipairs(purge(ARGV[2])) do out[#out + 1] = k end
return out
"""
)

# ARGV: ep, now, token, capacity, batch keys...  Must hold the lock. Drops expired entries, then returns
# {overflow, purged, candidates} where candidates are the first (overflow + #batch) members of lru with scores.
_PLAN = (
    _PRELUDE
    + """
local now, token, cap = ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('GET', K[5]) ~= token then return {-1} end
local purged = #purge(now)
local new = 0
for i = 5, #ARGV do
  if redis.call('HEXISTS', K[2], ARGV[i]) == 0 then new = new + 1 end
end
local over = redis.call('HLEN', K[2]) + new - cap
if over <= 0 then return {0, purged, {}} end
return {over, purged, redis.call('ZRANGE', K[1], 0, over + (#ARGV - 4) - 1, 'WITHSCORES')}
"""
)

# ARGV: ep, now.  Live entries: index size minus the entries expired by the tier's clock.
_COUNT = (
    _KEYS
    + """
return redis.call('HLEN', K[2]) - redis.call('ZCOUNT', K[3], '-inf', ARGV[2])
"""
)

# ARGV: ep, token.  Must hold the lock. Records every key in the change feed (when an index is attached) and
# drops the indexes and counters; the entry hashes are unlinked afterwards by SCAN (invisible without idx).
_CLEAR = (
    _PRELUDE
    + """
if redis.call('GET', K[5]) ~= ARGV[2] then return -1 end
if redis.call('EXISTS', K[6]) == 1 then
  for _, key in ipairs(redis.call('HKEYS', K[2])) do changed(key) end
end
-- counters restart with the next write (gen from the clock, see bump); the change feed stays
redis.call('UNLINK', K[1], K[2], K[3], K[4], K[9], K[10], K[11])
return 0
"""
)

# ARGV: ep, then (seq, key) pairs: forget a change unless the key changed again since.
_ACK = (
    _KEYS
    + """
for i = 2, #ARGV, 2 do
  local s = redis.call('ZSCORE', K[7], ARGV[i + 1])
  if s and tonumber(s) == tonumber(ARGV[i]) then redis.call('ZREM', K[7], ARGV[i + 1]) end
end
return 0
"""
)

_RELEASE = (
    _KEYS
    + """
if redis.call('GET', K[5]) == ARGV[2] then return redis.call('DEL', K[5]) end
return 0
"""
)


def _secrets_of(url: str) -> list[str]:
    """Return the password(s) in *url*, raw and percent-decoded, to scrub from any text."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_PARAMS and v]
    except ValueError:
        pass
    return [s for s in dict.fromkeys(found) if s]


def _escape_glob(text: str) -> str:
    """Escape the characters SCAN MATCH treats as a pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the redis extra is installed in development
        raise MissingDependencyError(
            "RedisTier needs the redis client: pip install 'agentmem-plugin[redis]'"
        ) from exc
    return redis


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode()


class RedisTier(Tier):
    """A short-term tier in Redis, shared by every process using the same URL, prefix and namespace.

    Args:
        url: ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``); ignored with *client*.
        namespace: Entries of this tier live in this namespace; other namespaces are invisible.
        capacity: Maximum live entries in the namespace (None: unbounded), enforced across processes.
        clock: Source of the current time for TTL and access bookkeeping (default :func:`time.time`).
        on_evict: Called with the entries evicted for capacity, before they leave; if it raises, the write
            that caused the eviction is not applied and the error propagates.
        prefix: First part of every Redis key of this tier.
        client: A ``redis.Redis`` to use instead of connecting to *url* (must not decode responses); it is
            not closed by :meth:`close`.
        compression_threshold: Encoded values above this many bytes are zstd-compressed (None: never).
        lock_timeout: Seconds an eviction or ``compute`` may hold the namespace lock before it lapses (a
            crashed holder releases it this way); a write whose lock lapsed fails without being applied.
        socket_timeout: Seconds to wait for Redis before failing an operation.

    Raises:
        InvalidArgumentError: a bad namespace, prefix or capacity, or a client that decodes responses.
        StorageError: Redis cannot be reached (the message shows the URL without its password).
        MissingDependencyError: the ``redis`` package is not installed.

    Example:
        >>> from agentmem_plugin.entry import MemoryEntry
        >>> tier = RedisTier("redis://127.0.0.1:6379/0", namespace="doc", capacity=2)  # doctest: +SKIP
        >>> tier.put_many([MemoryEntry("a", 1, priority=1), MemoryEntry("b", 2), MemoryEntry("c", 3)])  # doctest: +SKIP
        >>> sorted(tier.keys())  # doctest: +SKIP
        ['a', 'c']

    """

    name = "redis"
    persistent = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "",
        capacity: int | None = None,
        clock: Clock | None = None,
        on_evict: EvictionCallback | None = None,
        prefix: str = "agentmem",
        client: Any | None = None,
        compression_threshold: int | None = DEFAULT_COMPRESSION_THRESHOLD,
        lock_timeout: float = 30.0,
        socket_timeout: float = 10.0,
    ) -> None:
        super().__init__(clock=clock)
        self._configure(
            namespace=namespace,
            capacity=capacity,
            on_evict=on_evict,
            compression_threshold=compression_threshold,
        )
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "\x00\r\n "):
            raise InvalidArgumentError(
                f"prefix must be a non-empty str without spaces or NUL, got {prefix!r:.80}"
            )
        for what, seconds in (("lock_timeout", lock_timeout), ("socket_timeout", socket_timeout)):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
                raise InvalidArgumentError(f"{what} must be a positive number, got {seconds!r}")
        self.prefix = prefix
        self.lock_timeout = float(lock_timeout)
        self.url = redact_url(url) if client is None else "<client>"
        self._secrets = _secrets_of(url) if client is None else []
        ns = namespace.replace("%", "%25").replace(":", "%3A")
        self._base = f"{prefix}:{ns}:"
        self._entry_prefix = f"{self._base}e:"
        # the order is the one of K in the Lua scripts
        names = "lru idx exp tick lock meta chg chgseq seq ver gen"
        self._keys = [self._base + k for k in names.split()]
        self._script_keys = [self._base.encode()]  # the scripts derive every key from it
        self._bprefix = self._entry_prefix.encode()
        self._local = threading.local()  # .token: the namespace lock this thread holds
        self._stats_lock = threading.Lock()
        self._search_lock = threading.Lock()
        self._search_index = SearchIndex()  # local BM25 over the namespace, synced by write version
        self._search_versions: dict[str, bytes] = {}
        self._search_gen = ""
        self._closed = False
        redis = _import_redis()
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._connection_errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            ConnectionError,
            TimeoutError,
        )
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url,
                    decode_responses=False,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout,
                )
            except ValueError as exc:
                raise InvalidArgumentError(
                    f"not a Redis URL: {self.url!r} ({self._scrub(str(exc))})"
                ) from None
            self._owns_client = True
        else:
            kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
            if kwargs.get("decode_responses"):
                raise InvalidArgumentError(
                    "RedisTier needs a client created with decode_responses=False (values are bytes)"
                )
            self._owns_client = False
        self._client = client
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("write", _WRITE),
                ("get", _GET),
                ("scan", _SCAN),
                ("versions", _VERSIONS),
                ("delete", _DELETE),
                ("cleanup", _CLEANUP),
                ("plan", _PLAN),
                ("count", _COUNT),
                ("clear", _CLEAR),
                ("ack", _ACK),
                ("release", _RELEASE),
            )
        }
        self._shas = {name: script.sha for name, script in self._scripts.items()}
        self._evalsha = client.evalsha
        self._no_script: type[BaseException] = redis.exceptions.NoScriptError
        try:
            with self._errors("connecting"):
                self._register_namespace()
        except BaseException:
            self.close()
            raise

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn redis-py failures into :class:`StorageError` naming the URL without its password."""
        if self._closed:
            raise StorageError(f"the Redis tier at {self.url!r} is closed")
        try:
            yield
        except AgentMemError:
            raise
        except self._redis_errors + self._connection_errors as exc:
            raise self._failure(exc, what) from (None if self._scrub(str(exc)) != str(exc) else exc)

    def _failure(self, exc: BaseException, what: str) -> StorageError:
        detail = self._scrub(str(exc))
        if isinstance(exc, self._connection_errors):
            return BackendUnavailableError(
                f"Redis at {self.url!r} is unavailable while {what}: {detail}"
            )
        return StorageError(f"Redis at {self.url!r} failed while {what}: {detail}")

    def _call(self, script: str, args: Sequence[Any], what: str) -> Any:
        """Run *script* in one round trip (EVALSHA; the script is loaded again if Redis lost it)."""
        if self._closed:
            raise StorageError(f"the Redis tier at {self.url!r} is closed")
        keys = self._script_keys
        try:  # what _errors does, inline: this is every operation's path
            try:
                return self._evalsha(self._shas[script], 1, *keys, self._bprefix, *args)
            except self._no_script:
                return self._scripts[script](keys=keys, args=[self._bprefix, *args])
        except self._redis_errors + self._connection_errors as exc:
            raise self._failure(exc, what) from (None if self._scrub(str(exc)) != str(exc) else exc)

    def _token(self) -> str:
        return getattr(self._local, "token", None) or ""

    def _count_stat(self, **deltas: int) -> None:
        with self._stats_lock:
            counters = self.stats_counters
            for name, delta in deltas.items():
                setattr(counters, name, getattr(counters, name) + delta)

    @contextlib.contextmanager
    def _exclusive(self, what: str) -> Iterator[str]:
        """Hold the namespace lock (reentrant within a thread); threads of this process queue on ``_lock``."""
        with self._lock:
            held = self._token()
            if held:
                yield held
                return
            token = secrets.token_hex(16)
            lease = max(1, int(self.lock_timeout * 1000))
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.0005
            while True:
                with self._errors(what):
                    if self._client.set(self._keys[4], token, nx=True, px=lease):
                        break
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"timed out after {self.lock_timeout:g}s waiting for the lock of namespace "
                        f"{self.namespace!r} on Redis {self.url!r} while {what}"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
            self._local.token = token
            try:
                yield token
            finally:
                self._local.token = None
                try:
                    self._call("release", [token], "releasing the namespace lock")
                except StorageError as exc:  # it lapses by itself after lock_timeout
                    logger.warning("redis: %s", exc)

    def _lapsed(self, what: str) -> StorageError:
        return StorageError(
            f"the lock of namespace {self.namespace!r} on Redis {self.url!r} lapsed while {what} "
            "(an eviction callback or compute function took longer than lock_timeout?); nothing was written"
        )

    def _respecting_lock(self, script: str, args: Callable[[str], list[Any]], what: str) -> Any:
        """Run a script that refuses ({-1}) while another holder has the namespace lock; wait and retry then."""
        result = self._call(script, args(self._token()), what)
        if int(result[0]) != -1:
            return result
        with self._exclusive(what) as token:
            result = self._call(script, args(token), what)
        if int(result[0]) == -1:
            raise self._lapsed(what)
        return result

    # -- encoding --------------------------------------------------------------------------------------------------

    def _row(self, entry: MemoryEntry, now: float, wall: float) -> list[bytes]:
        key = entry.key
        expires_at = entry.expires_at
        score = max(-_SCORE_LIMIT, min(_SCORE_LIMIT, entry.priority))
        if expires_at is None:
            pexpireat = 0
        else:  # the same remaining lifetime, in real time: Redis only collects what the clock expired
            pexpireat = int((wall + max(0.0, expires_at - now)) * 1000) + _EXPIRY_GRACE_MS
        text = "\x00".join(
            (
                "" if expires_at is None else repr(float(expires_at)),
                "" if entry.ttl is None else repr(float(entry.ttl)),
                str(entry.priority),
                str(entry.access_count),
                "" if entry.last_accessed is None else repr(float(entry.last_accessed)),
                str(score),
                str(pexpireat),
                str(entry.version),
            )
        ).encode()
        return [
            key.encode(),
            encode_value(
                entry.value,
                compression_threshold=self.compression_threshold,
                what=f"value of key {key!r}",
            ),
            encode_json(list(entry.tags)),
            encode_json(entry.metadata, what=f"metadata of key {key!r}") if entry.metadata else b"",
            repr(float(entry.created_at)).encode(),
            *text.split(b"\x00"),
        ]

    @staticmethod
    def _pack(fields: list[bytes]) -> bytes:
        """Pack the fields into one string: their lengths (comma-separated), a newline, the fields back to back."""
        return ",".join([str(len(f)) for f in fields]).encode() + b"\n" + b"".join(fields)

    @staticmethod
    def _entry(key: str, f: Sequence[bytes | None]) -> MemoryEntry:
        v, t, md, c, x, ttl, p, ac, la, _, w = f
        entry = object.__new__(MemoryEntry)
        entry.key = key
        entry.value = decode_value(v or b"", what=f"value of key {key!r}")
        entry.tags = tuple(decode_json(t or b"[]", what=f"tags of key {key!r}"))
        entry.metadata = decode_json(md, what=f"metadata of key {key!r}") if md else {}
        entry.created_at = float(_text(c))
        entry.expires_at = float(_text(x)) if x else None
        entry.ttl = float(_text(ttl)) if ttl else None
        entry.priority = int(_text(p))
        entry.access_count = int(_text(ac) or 0)
        entry.last_accessed = float(_text(la)) if la else None
        entry.version = int(_text(w)) if w else 0
        return entry

    # -- writing ---------------------------------------------------------------------------------------------------

    def _write(self, batch: dict[str, MemoryEntry], what: str) -> None:
        """Write *batch* (normalized, unique keys), evicting for capacity through ``on_evict``."""
        now, wall = self.clock(), time.time()
        packed = self._pack([x for e in batch.values() for x in self._row(e, now, wall)])

        check = (
            "1" if self.on_evict is not None else "2"
        )  # without a callback: evict in the same script

        def args(token: str) -> list[Any]:
            return [repr(self.clock()), token, self.capacity or 0, len(batch), 0, check, packed]

        result = self._respecting_lock("write", args, what)
        if int(result[0]) == 0:
            self._count_stat(
                writes=len(batch), expirations=int(result[1]), evictions=int(result[2])
            )
            return
        self._count_stat(expirations=int(result[2]))  # -2: the write needs evictions
        with self._exclusive(what) as token:
            self._evict_and_write(batch, packed, token, what)

    def _evict_and_write(
        self, batch: dict[str, MemoryEntry], packed: bytes, token: str, what: str
    ) -> None:
        """Under the namespace lock: list the victims, hand them to ``on_evict``, then write and remove them."""
        assert self.capacity is not None
        now = self.clock()
        plan = self._call("plan", [repr(now), token, self.capacity, *batch], what)
        if int(plan[0]) == -1:
            raise self._lapsed(what)
        overflow, purged, candidates = int(plan[0]), int(plan[1]), plan[2]
        self._count_stat(expirations=purged)
        victim_keys: list[str] = []
        victims: list[MemoryEntry] = []
        if overflow > 0:
            policy = LRUEvictionPolicy(max(1, len(candidates) // 2))
            for member, score in zip(candidates[::2], candidates[1::2], strict=True):
                policy.add(member[16:].decode(), int(float(score)))
            incoming = [
                (k, max(-_SCORE_LIMIT, min(_SCORE_LIMIT, e.priority))) for k, e in batch.items()
            ]
            victim_keys = policy.preview_victims(overflow, incoming)
            stored = [k for k in victim_keys if k not in batch]
            current = dict(zip(stored, self._get(stored, touch=False, now=now), strict=True))
            found = [batch[k] if k in batch else current[k] for k in victim_keys]
            victims = [v for v in found if v is not None]  # None: collected by Redis meanwhile
            if self.on_evict is not None and victims:
                try:
                    self.on_evict(victims)
                except BaseException:
                    logger.warning(
                        "redis: eviction callback failed; the write of %d entries was not made",
                        len(batch),
                    )
                    raise
        head = [repr(self.clock()), token, self.capacity, len(batch), len(victim_keys), "0"]
        result = self._call("write", [*map(str, head), packed, *victim_keys], what)
        if int(result[0]) != 0:
            raise self._lapsed(what)
        self._count_stat(writes=len(batch), expirations=int(result[1]), evictions=len(victim_keys))
        if victim_keys:
            logger.debug(
                "redis: evicted %d entries for capacity %d", len(victim_keys), self.capacity
            )

    # -- primitives ------------------------------------------------------------------------------------------------

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries* atomically (values are normalized first; later duplicates win).

        Raises:
            SerializationError: a value or metadata is not JSON-serializable; nothing was stored.
            StorageError: Redis failed or is unreachable; nothing was stored.

        """
        batch = self._normalized_batch(entries)
        if batch:
            self._write(batch, f"storing a batch of {len(batch)} entries")

    def _get(
        self, keys: Sequence[str], *, touch: bool, now: float | None = None
    ) -> list[MemoryEntry | None]:
        if not keys:
            return []
        now = self.clock() if now is None else now
        rows = self._call("get", [repr(now), "1" if touch else "0", *keys], "reading entries")
        return [None if f is None else self._unpack(k, f) for k, f in zip(keys, rows, strict=True)]

    @classmethod
    def _unpack(cls, key: str, packed: bytes) -> MemoryEntry:
        """Decode one reply of the get script: the fields' lengths, a newline, then the fields."""
        head, _, body = packed.partition(b"\n")
        fields: list[bytes | None] = []
        pos = 0
        for n in head.split(b","):
            end = pos + int(n)
            fields.append(body[pos:end])
            pos = end
        if len(fields) != 10:
            raise StoreCorruptError(
                f"the Redis entry of key {key!r} has {len(fields)} fields, not 10"
            )
        fields.insert(9, None)  # the insertion sequence (only a scan orders by it)
        return cls._entry(key, fields)

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Return the live entry for each key (None when missing or expired); ``touch`` counts the reads."""
        got = self._get(keys, touch=touch)
        if touch:
            hits = sum(e is not None for e in got)
            self._count_stat(hits=hits, misses=len(got) - hits)
        return got

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys* atomically; return how many live entries were removed."""
        if not keys:
            return 0
        what = f"deleting {len(keys)} entries"
        result = self._respecting_lock(
            "delete", lambda token: [repr(self.clock()), token, *keys], what
        )
        removed = int(result[1])
        self._count_stat(deletes=removed)
        return removed

    def scan(self) -> list[MemoryEntry]:
        """Return an atomic snapshot of the live entries, least recently inserted first."""
        flat = self._call("scan", [repr(self.clock())], "listing entries")
        out: list[tuple[int, MemoryEntry]] = []
        for i in range(0, len(flat), 12):
            f = flat[i + 1 : i + 12]
            out.append((int(f[9]), self._entry(flat[i].decode(), f)))
        out.sort(key=lambda pair: pair[0])
        return [e for _, e in out]

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """BM25 over the namespace's live entries (key, value text and tags); reads are not counted.

        The BM25 index is kept in this process and brought up to date before each search from the entries'
        write versions (one small script), so only entries written since the last search are fetched and
        tokenized again, whichever process wrote them.
        """
        if limit <= 0:
            return []
        with self._search_lock:
            index, versions = self._search_index, self._search_versions
            gen, flat, expired = self._call(
                "versions", [repr(self.clock()), self._search_gen], "searching"
            )
            if flat is None:  # nothing written or removed since the last sync
                live = dict(versions)
            else:
                live = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
                self._search_gen = gen.decode()
            for key in expired:
                live.pop(key.decode(), None)
            for key in [k for k in versions if k not in live]:
                index.remove_entry(key)
                del versions[key]
            stale = [k for k, w in live.items() if versions.get(k) != w]
            for start in range(0, len(stale), 500):
                chunk = stale[start : start + 500]
                for key, e in zip(chunk, self._get(chunk, touch=False), strict=True):
                    if e is None:  # deleted or expired meanwhile
                        index.remove_entry(key)
                        versions.pop(key, None)
                    else:
                        index.add_entry(key, document_text(key, e.value, e.tags))
                        versions[key] = live[key]
            ranked = index.search(query, limit)
        entries = self._get([k for k, _ in ranked], touch=False)
        return [(e, score) for e, (_, score) in zip(entries, ranked, strict=True) if e is not None]

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Atomically (across processes) replace *key*'s entry by ``fn(current or None)``; None deletes."""
        with self._exclusive(f"updating key {key!r}"):
            current = self._get([key], touch=False)[0]
            new = fn(current)
            if new is UNCHANGED:
                return current
            if new is None:
                if current is not None:
                    self.delete_many([key])
                return None
            self._write(self._normalized_batch([new]), f"updating key {key!r}")
            return new

    def cleanup(self) -> list[str]:
        """Remove the entries expired by the tier's clock; return their keys."""
        what = "removing expired entries"
        result = self._respecting_lock("cleanup", lambda token: [repr(self.clock()), token], what)
        keys = [k.decode() for k in result[1:]]
        self._count_stat(expirations=len(keys))
        return keys

    def count(self) -> int:
        """Return the number of live entries in the namespace."""
        return int(self._call("count", [repr(self.clock())], "counting entries"))

    def clear(self) -> None:
        """Remove every entry of this namespace (SCAN + UNLINK of its keys; other namespaces are untouched)."""
        with self._exclusive("clearing the namespace") as token:
            if int(self._call("clear", [token], "clearing the namespace")) != 0:
                raise self._lapsed("clearing the namespace")
            self._unlink_matching(_escape_glob(self._entry_prefix) + "*", "clearing the namespace")

    def _unlink_matching(self, pattern: str, what: str) -> int:
        removed = 0
        with self._errors(what):
            batch: list[bytes] = []
            for name in self._client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 500:
                    removed += self._client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += self._client.unlink(*batch)
        return removed

    # -- change feed ---------------------------------------------------------------------------------------------

    def index_meta(self) -> tuple[str, int] | None:
        """Return the (model, dimension) recorded by :meth:`set_index_meta`, or None."""
        with self._errors("reading the semantic index model"):
            model, dim = self._client.hmget(self._keys[5], "model", "dim")
        return None if model is None or dim is None else (model.decode(), int(dim))

    def set_index_meta(self, model: str, dim: int) -> None:
        """Record the semantic index's model; from now on every change of the namespace enters the feed."""
        with self._errors("recording the semantic index model"):
            self._client.hset(self._keys[5], mapping={"model": model, "dim": str(int(dim))})

    def changes(self, limit: int) -> list[tuple[int, str]]:
        """Return up to *limit* changed keys not yet acknowledged, oldest first."""
        if limit <= 0:
            return []
        with self._errors("reading index changes"):
            rows = self._client.zrange(self._keys[6], 0, min(limit, 2**62) - 1, withscores=True)
        return [(int(score), key.decode()) for key, score in rows]

    def ack_changes(self, changes: Sequence[tuple[int, str]]) -> None:
        """Forget acknowledged changes (a key changed again since keeps its newer change)."""
        if changes:
            args = [x for seq, key in changes for x in (str(seq), key)]
            self._call("ack", args, f"acknowledging {len(changes)} index changes")

    # -- extras ----------------------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The redis-py client; another tier (a namespace view) may borrow it with ``client=``."""
        return self._client

    def _register_namespace(self) -> None:
        """Add this tier's namespace to the prefix's sorted set of namespaces (one round trip, with the ping).

        Every tier registers its namespace when it opens, before it can write, so the set holds every namespace
        written since this version; :meth:`namespaces` fills it once from a SCAN for older data.
        """
        pipe = self._client.pipeline(transaction=False)
        pipe.zadd(f"{self.prefix}:namespaces", {self.namespace.encode(): 0})
        pipe.ping()
        pipe.execute()

    def namespaces(self, prefix: str | None = None) -> list[str]:
        """Return the namespaces under this tier's prefix holding at least one entry (expired included), sorted.

        Read from the sorted set of namespace names (``{prefix}:namespaces``, every member score 0) with
        ZRANGEBYLEX: *prefix* is one range of it (its own name, then ``prefix/`` up to ``prefix0``), and each name
        found is checked to hold entries (one pipelined HLEN each). The cost is what the range holds: names of
        namespaces opened but emptied stay in the set and are checked. Data written before the set existed is
        found once by a SCAN of the keys (``{prefix}:namespaces:complete`` records that it ran).
        """
        bounds = namespace_bounds(prefix)
        index, complete = f"{self.prefix}:namespaces", f"{self.prefix}:namespaces:complete"
        client = self._client
        with self._errors("listing namespaces"):
            if not client.exists(complete):
                self._fill_namespaces(index, complete)
            if bounds is None:
                names = client.zrangebylex(index, b"-", b"+")
            else:
                name, low, high = bounds
                pipe = client.pipeline(transaction=False)
                pipe.zrangebylex(index, b"[" + name.encode(), b"[" + name.encode())
                pipe.zrangebylex(index, b"[" + low.encode(), b"(" + high.encode())
                own, below = pipe.execute()
                names = [*own, *below]
            if not names:
                return []
            spaces = [n.decode() for n in names]
            pipe = client.pipeline(transaction=False)
            for ns in spaces:
                escaped = ns.replace("%", "%25").replace(":", "%3A")
                pipe.hlen(f"{self.prefix}:{escaped}:idx")
            held = pipe.execute()
        return sorted(ns for ns, n in zip(spaces, held, strict=True) if n)

    def _fill_namespaces(self, index: str, complete: str) -> None:
        """Add the namespaces of keys written before the set of namespaces existed (one SCAN, once per prefix)."""
        head, tail = f"{self.prefix}:", ":idx"
        found = []
        for name in self._client.scan_iter(match=_escape_glob(head) + "*" + tail, count=1000):
            ns = name.decode()[len(head) : -len(tail)]
            if ":" not in ns:
                found.append(unquote(ns).encode())
        pipe = self._client.pipeline(transaction=False)
        if found:
            pipe.zadd(index, dict.fromkeys(found, 0))
        pipe.set(complete, b"1")
        pipe.execute()

    def drop(self) -> int:
        """Delete every Redis key of this namespace, bookkeeping included; return how many were deleted.

        Unlike :meth:`clear` this also forgets the semantic index model and its change feed.
        """
        with self._exclusive("dropping the namespace"):
            removed = self._unlink_matching(
                _escape_glob(self._base) + "*", "dropping the namespace"
            )
            with self._errors("dropping the namespace"):  # out of the set of namespaces too
                index = f"{self.prefix}:namespaces"
                self._client.zrem(index, self.namespace.encode())
                if not self._client.zcard(index):
                    self._client.delete(f"{self.prefix}:namespaces:complete")
        return removed

    def stats(self) -> dict[str, Any]:
        """Counters, size, and where the tier lives (URL without password, prefix, namespace)."""
        return {
            **super().stats(),
            "url": self.url,
            "prefix": self.prefix,
            "namespace": self.namespace,
            "policy": "priority-lru",
        }

    def close(self) -> None:
        """Close the connection pool this tier created (idempotent; a client passed in stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client and getattr(self, "_client", None) is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    def __repr__(self) -> str:
        return f"RedisTier(url={self.url!r}, prefix={self.prefix!r}, namespace={self.namespace!r})"
