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

# ARGV[1] city tag, ARGV[2] server time ms, ARGV[3] trail cap, ARGV[4] records (JSON),
# ARGV[5] publishes (JSON: [[channel, payload], ...]).
# A record: [worker, seq, state, last or false, trail]
#   last  = [lat, lng, ts_ms, accuracy_m, speed or "", heading or ""]
#   trail = [[lat, lng, ts_ms, accuracy_m], ...]
# The worker's trail stream gets one entry per batch (fields seq, pts = the trail as
# JSON), not one per fix: an XADD per fix was most of Redis's work at 5 fixes/frame.
INGEST = """
local tag, now, cap = ARGV[1], ARGV[2], ARGV[3]
local recs = cjson.decode(ARGV[4])
for _, r in ipairs(recs) do
  local w = tostring(r[1])
  local hkey = tag .. 'w:' .. w
  local last = r[4]
  if last then
    -- leave every other state's set: a state change may have raced this batch
    for _, st in ipairs({'available', 'busy', 'unavailable'}) do
      if st ~= r[3] then redis.call('ZREM', tag .. 'geo:' .. st, w) end
    end
    redis.call('GEOADD', tag .. 'geo:' .. r[3], last[2], last[1], w)
    redis.call('HSET', hkey, 'seq', r[2], 'state', r[3], 'lat', last[1], 'lng', last[2],
               'ts', last[3], 'acc', last[4], 'spd', last[5], 'hdg', last[6], 'seen', now, 'stale', 0)
    redis.call('ZADD', tag .. 'presence', now, w)
  else
    redis.call('HSET', hkey, 'seq', r[2])
  end
  -- one stream entry per worker per batch: seq = the highest in it, pts = its points
  if #r[5] > 0 then
    redis.call('XADD', tag .. 'trail:' .. w, 'MAXLEN', '~', cap, '*',
               'seq', r[2], 'pts', cjson.encode(r[5]))
  end
end
local pubs = cjson.decode(ARGV[5])
for _, p in ipairs(pubs) do redis.call('PUBLISH', p[1], p[2]) end
return #recs
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
return stale
"""
