-- bench/lib/check.lua: appended to a prefix that sets `marker` (and, for a
-- POST, wrk.method/body/headers). Counts every response that is not a 200
-- whose body contains the marker; prints one line:
-- RESULT requests req/s p50(us) p99(us) bad socket-errors
-- With `limit` set (responses per thread), each thread stops after that
-- many: a run of a fixed number of requests.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; seen = 0 end
function response(status, headers, body)
    if status ~= 200 or not string.find(body, marker, 1, true) then bad = bad + 1 end
    seen = seen + 1
    if limit and seen >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
    local n = 0
    for _, t in ipairs(threads) do n = n + t:get("bad") end
    local e = summary.errors
    io.write(string.format("RESULT %d %.1f %d %d %d %d\n", summary.requests,
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), n,
        e.connect + e.read + e.write + e.timeout))
end
