-- wrk script: POST a fixed chat request on every request.
-- The body file is taken from $BENCH_BODY (run.sh sets it), else benches/load/request.json.
-- $BENCH_HEADERS adds request headers, "Name: value" pairs separated by "|".
local path = os.getenv("BENCH_BODY") or "benches/load/request.json"
local f = assert(io.open(path, "rb"), "cannot open request body " .. path)
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
    local name, value = string.match(pair, "^%s*([^:]+):%s*(.-)%s*$")
    if name then wrk.headers[name] = value end
end
