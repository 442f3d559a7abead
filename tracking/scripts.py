"""Lua scripts that apply a whole tick of location writes in one call per city.

One call per city per event-loop tick instead of a pipeline of four commands per fix:
measured here, redis-py spends 70–100 µs of client CPU packing those four commands,
the script call about 0.4 µs (the work moves to the Redis process, which runs on its
own core). Every key a script touches starts with the city's hash-tag prefix, passed
as ARGV[1]; KEYS[1] is the city's presence key so a cluster routes the call to the
city's slot.
"""

from __future__ import annotations

STATES = ("available", "busy", "unavailable")

LOG_CAP = 2_000
"""Entries kept in a city's change log of available workers (``geo:available:log``), one
entry per script call: every write of the ``geo:available`` set appends, in the same
script, ``a`` = ``lng,lat,worker,…`` (added or moved) and ``r`` = ``worker,…`` (removed),
so the log and the set never disagree. ``tracking.geo_log`` reads it for the engine.
At 100k workers sending a fix every 5 s an entry holds ~1,000 records (~30 KB) and
about 20 are written a second: 2,000 entries are ~100 s of history and ~60 MB; an
engine that fell further behind rebuilds from the set."""

# ARGV[1] city tag, ARGV[2] server time ms, ARGV[3] trail cap, ARGV[4] the records,
# then PUBLISH pairs: ARGV[5] channel, ARGV[6] payload, ARGV[7] channel, ...
# The records are lines "worker|seq|state|lat|lng|ts|acc|speed|heading|pts\n": lat to
# heading empty when the batch moved only the worker's seq (no live fix), speed and
# heading empty when unknown, pts the batch's trail points as JSON ([[lat, lng, ts,
# acc], ...]) or empty. Measured here (1,000 records a call): Redis spends 16 µs a
# record on lines against 36 µs on the same records as one JSON document (cjson and
# Lua tables were most of it), and the client 4.6 µs against 1.9 µs.
# A record whose seq is below the stored one is skipped (a replaced socket's late write).
# The worker's trail stream gets one entry per batch (fields seq, pts), not one per
# fix: an XADD per fix was most of Redis's work at 5 fixes/frame. Set membership is
# changed once per state per call (GEOADD, ZREM from the other states, ZADD presence)
# with many members each, in chunks that stay under Lua's stack limit.
INGEST = """
local tag, now, cap = ARGV[1], ARGV[2], ARGV[3]
local geo = {available = {}, busy = {}, unavailable = {}}
local presence = {}
local n = 0
for w, seq, st, lat, lng, ts, acc, spd, hdg, pts in string.gmatch(ARGV[4],
    '([^|\\n]*)|([^|\\n]*)|([^|\\n]*)|([^|\\n]*)|([^|\\n]*)|([^|\\n]*)|([^|\\n]*)|([^|\\n]*)|([^|\\n]*)|([^|\\n]*)\\n') do
  n = n + 1
  local hkey = tag .. 'w:' .. w
  local cur = tonumber(redis.call('HGET', hkey, 'seq'))
  -- A record behind the stored seq is a replaced socket's late write (another process
  -- wrote past it): it must not move the worker's seq or position back.
  if not (cur and cur > tonumber(seq)) then
    if lat ~= '' then
      local g = geo[st]
      local k = #g
      g[k + 1] = lng; g[k + 2] = lat; g[k + 3] = w
      k = #presence
      presence[k + 1] = now; presence[k + 2] = w
      redis.call('HSET', hkey, 'seq', seq, 'state', st, 'lat', lat, 'lng', lng, 'ts', ts,
                 'acc', acc, 'spd', spd, 'hdg', hdg, 'seen', now, 'stale', 0)
    else
      redis.call('HSET', hkey, 'seq', seq)
    end
    if pts ~= '' then
      redis.call('XADD', tag .. 'trail:' .. w, 'MAXLEN', '~', cap, '*', 'seq', seq, 'pts', pts)
    end
  end
end
local CH = 999
-- Workers leaving the available set, for its change log (only those in it: busy workers'
-- fixes would otherwise log a removal each).
local gone = {}
for st, g in pairs(geo) do
  if st ~= 'available' then
    for j = 3, #g, 3 * CH do
      local ms = {}
      for m = j, math.min(j + 3 * CH - 1, #g), 3 do ms[#ms + 1] = g[m] end
      local scores = redis.call('ZMSCORE', tag .. 'geo:available', unpack(ms))
      for i = 1, #ms do
        if scores[i] then gone[#gone + 1] = ms[i] end
      end
    end
  end
end
for st, g in pairs(geo) do
  if #g > 0 then
    -- out of every other state's set (a state change may have raced this batch) ...
    for _, other in ipairs({'available', 'busy', 'unavailable'}) do
      if other ~= st then
        local key = tag .. 'geo:' .. other
        for j = 3, #g, 3 * CH do
          local ms = {}
          for m = j, math.min(j + 3 * CH - 1, #g), 3 do ms[#ms + 1] = g[m] end
          redis.call('ZREM', key, unpack(ms))
        end
      end
    end
    -- ... and into its own
    local key = tag .. 'geo:' .. st
    for j = 1, #g, 3 * CH do
      redis.call('GEOADD', key, unpack(g, j, math.min(j + 3 * CH - 1, #g)))
    end
  end
end
for j = 1, #presence, 2 * CH do
  redis.call('ZADD', tag .. 'presence', unpack(presence, j, math.min(j + 2 * CH - 1, #presence)))
end
if #geo.available > 0 or #gone > 0 then
  redis.call('XADD', tag .. 'geo:available:log', 'MAXLEN', '~', LOG_CAP, '*',
             'a', table.concat(geo.available, ','), 'r', table.concat(gone, ','))
end
for p = 5, #ARGV - 1, 2 do redis.call('PUBLISH', ARGV[p], ARGV[p + 1]) end
return n
"""

# Move one worker to another state (or out of the index: state "offline"), keeping
# their last position. ARGV: city tag, worker, new state. Returns the previous state.
SET_STATE = """
local tag, w, new = ARGV[1], ARGV[2], ARGV[3]
local hkey = tag .. 'w:' .. w
local old = redis.call('HGET', hkey, 'state') or ''
local pos = redis.call('HMGET', hkey, 'lat', 'lng', 'stale')
for _, s in ipairs({'available', 'busy', 'unavailable'}) do
  if s ~= new then redis.call('ZREM', tag .. 'geo:' .. s, w) end
end
if new == 'offline' then
  redis.call('ZREM', tag .. 'presence', w)
elseif pos[1] and pos[3] ~= '1' then
  redis.call('GEOADD', tag .. 'geo:' .. new, pos[2], pos[1], w)
end
if new == 'available' and pos[1] and pos[3] ~= '1' then
  redis.call('XADD', tag .. 'geo:available:log', 'MAXLEN', '~', LOG_CAP, '*',
             'a', pos[2] .. ',' .. pos[1] .. ',' .. w, 'r', '')
else
  redis.call('XADD', tag .. 'geo:available:log', 'MAXLEN', '~', LOG_CAP, '*', 'a', '', 'r', w)
end
redis.call('HSET', hkey, 'state', new)
return old
"""

# Take workers with no fix since ARGV[2] (ms) out of the geo index, atomically, so
# that exactly one sweeping process reports each of them. Returns their ids.
SWEEP_STALE = """
local tag, cutoff = ARGV[1], ARGV[2]
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, 1000)
for _, w in ipairs(stale) do
  redis.call('ZREM', KEYS[1], w)
  for _, s in ipairs({'available', 'busy', 'unavailable'}) do
    redis.call('ZREM', tag .. 'geo:' .. s, w)
  end
  redis.call('HSET', tag .. 'w:' .. w, 'stale', 1)
end
if #stale > 0 then
  redis.call('XADD', tag .. 'geo:available:log', 'MAXLEN', '~', LOG_CAP, '*',
             'a', '', 'r', table.concat(stale, ','))
end
return stale
"""


INGEST = INGEST.replace("LOG_CAP", str(LOG_CAP))
SET_STATE = SET_STATE.replace("LOG_CAP", str(LOG_CAP))
SWEEP_STALE = SWEEP_STALE.replace("LOG_CAP", str(LOG_CAP))
