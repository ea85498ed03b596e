-- Requests for the storage load benchmark (bench/storage_load.py), made by wrk.
-- WRK_PATHS: a file of request paths (presigned: each carries its own signature), gone over in turn.
-- WRK_METHOD: GET or PUT; WRK_BODY: a file whose bytes are each PUT's body;
-- WRK_RANGE: "<object size> <range length>" for random ranged GETs.
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local method = os.getenv("WRK_METHOD") or "GET"
local body = nil
if os.getenv("WRK_BODY") then
  local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
  body = f:read("*a")
  f:close()
end
local range_size, range_length = nil, nil
if os.getenv("WRK_RANGE") then
  range_size, range_length = os.getenv("WRK_RANGE"):match("(%d+) (%d+)")
  range_size, range_length = tonumber(range_size), tonumber(range_length)
end
local n = 0

function setup(thread)
  thread:set("first", math.random(#paths))
end

function init(args)
  n = first or 1
  math.randomseed(n * 7919 + os.time())
end

function request()
  n = n % #paths + 1
  local headers = {}
  if range_size then
    local start = math.random(0, range_size - range_length)
    headers["Range"] = string.format("bytes=%d-%d", start, start + range_length - 1)
  end
  if body then headers["Content-Length"] = tostring(#body) end
  return wrk.format(method, paths[n], headers, body)
end

function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d duration_us=%d bytes=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.bytes, bad,
    latency:percentile(50), latency:percentile(99)))
end
