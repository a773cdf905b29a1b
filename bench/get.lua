-- wrk script: GET the URL (with any -H headers given to wrk); counts 200 and 304
-- answers as good, and prints the same summary line as register.lua.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  other = 0
end

function response(status, headers, body)
  if status == 200 or status == 304 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_other = total_other + thread:get("other")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT created=%d other=%d errors=%d created_per_s=%.1f p50_ms=%.2f p99_ms=%.2f bytes_per_s=%.0f\n",
    total_ok, total_other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    total_ok / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.bytes / seconds))
end
