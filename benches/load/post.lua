-- wrk script: POST the fixed 971-byte chat request on every request.
-- The body file is taken from $BENCH_BODY (run.sh sets it), else benches/load/request.json.
local path = os.getenv("BENCH_BODY") or "benches/load/request.json"
local f = assert(io.open(path, "rb"), "cannot open request body " .. path)
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
