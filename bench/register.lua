-- wrk script: POST a distinct, valid registration on every request.
--
--   wrk -s bench/register.lua URL/api/v1/windows/ID/entries -- RUN [keys]
--
-- RUN (0-9) keeps the people of successive runs on the same window apart; with
-- `keys`, every request also carries its own `Idempotency-Key` header, as the
-- registration form of the public pages sends one. Every
-- request is a different person, document, e-mail address and phone number, so each
-- one should be answered 201; the summary counts them apart from everything else.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function letters(n)
  local out = {}
  repeat
    out[#out + 1] = string.char(97 + n % 26)
    n = math.floor(n / 26)
  until n == 0
  return table.concat(out)
end

function init(args)
  run = tonumber(args[1] or "0")
  keys = args[2] == "keys"
  n = 0
  created = 0
  other = 0
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local k = run * 10000000 + tid * 1000000 + n
  local body = string.format(
    '{"family_name":"Charge%s","given_names":"Awa","birth_date":"1990-05-17",' ..
    '"nationality":"SEN","document":{"kind":"foreigner_number","number":"%010d",' ..
    '"country":"FRA"},"email":"charge%d@example.org","phone":"+336%08d",' ..
    '"permit_expires_on":"2027-01-20","language":"fr"}',
    letters(k), k, k, k)
  local headers = nil
  if keys then
    headers = { ["Content-Type"] = "application/json", ["Idempotency-Key"] = "k" .. k }
  end
  return wrk.format(nil, nil, headers, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total_created, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_created = total_created + thread:get("created")
    total_other = total_other + thread:get("other")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT created=%d other=%d errors=%d created_per_s=%.1f p50_ms=%.2f p99_ms=%.2f\n",
    total_created, total_other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    total_created / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
