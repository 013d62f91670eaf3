-- wrk script for tests/bench/load/run.sh: POSTs Segment Tracking API bodies.
--
--   wrk ... -s post.lua http://127.0.0.1:PORT/v1/batch -- PATH AUTH MODE FILE RUN
--
--   PATH  request path (/v1/track or /v1/batch)
--   AUTH  value of the Authorization header
--   MODE  "fixed":  FILE holds one body, sent on every request (static request, cheapest client)
--         "rotate": FILE holds one body per line; each thread walks the list from its own
--                   offset, and every "@@@@@@@@@@@@" marker (the last 12 hex digits of each
--                   messageId) is replaced by a per-request tag: RUN (2 hex digits), the
--                   thread (2), a per-thread request counter (8). RUN must differ between the
--                   wrk runs against one server (run.sh numbers them), so that messageIds never
--                   repeat and the server's dedup window never answers a request from memory
--
-- done() prints one machine-readable line:  WRKRESULT {json}

local MARKER = "@@@@@@@@@@@@"

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function split_plain(s, sep)
  local parts, pos = {}, 1
  while true do
    local a, b = string.find(s, sep, pos, true)
    if not a then break end
    parts[#parts + 1] = string.sub(s, pos, a - 1)
    pos = b + 1
  end
  parts[#parts + 1] = string.sub(s, pos)
  return parts
end

local bodies, nbodies, idx, seq, run = nil, 0, 1, 0, 0

local function rotating_request()
  local parts = bodies[idx]
  idx = idx + 1
  if idx > nbodies then idx = 1 end
  seq = seq + 1
  local body
  if #parts == 1 then
    body = parts[1]
  else
    body = table.concat(parts, string.format("%02x%02x%08x", run % 256, tid % 256, seq % 4294967296))
  end
  return wrk.format(nil, nil, nil, body)
end

function init(args)
  local path, auth, mode, file = args[1], args[2], args[3], args[4]
  assert(path and auth and mode and file, "usage: -- PATH AUTH MODE FILE [RUN]")
  run = tonumber(args[5] or "0") or 0
  wrk.method = "POST"
  wrk.path = path
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = auth
  if mode == "fixed" then
    wrk.body = read_all(file)
    request = nil -- static request: wrk formats it once
  elseif mode == "rotate" then
    bodies = {}
    for line in io.lines(file) do
      if #line > 0 then bodies[#bodies + 1] = split_plain(line, MARKER) end
    end
    nbodies = #bodies
    assert(nbodies > 0, "no bodies in " .. file)
    -- spread threads over the list so they do not send the same bodies in lockstep
    idx = math.floor(nbodies * (((tid or 0) * 0.6180339887) % 1)) + 1
    seq = 0
    request = rotating_request
  else
    error("unknown mode " .. tostring(mode))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKRESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
