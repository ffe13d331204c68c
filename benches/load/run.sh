#!/usr/bin/env bash
# Load benchmark: residency-proxy against nginx `proxy_pass` in front of the same mock upstream.
#
#   bash benches/load/run.sh            # 3 interleaved rounds of 10 s per target and load
#   bash benches/load/run.sh --quick    # 1 round of 5 s
#
# Setup (benches/load/README.md explains it): a mock upstream (nginx answering a fixed 665-byte
# chat.completion) and the proxy under test share CPU 1; the load generator runs alone on CPU 0.
# Each target proxies the same 971-byte POST /v1/chat/completions with "store": true, which
# residency-proxy inspects and rewrites (decision `rewrite`). The script reports; it does not
# gate: it exits 0 once the measurements ran, 2 when the setup cannot be brought up.
#
# Environment overrides: LOAD_ROUNDS, LOAD_DURATION (s), LOAD_WARMUP (s), LOAD_CONNS ("32 256"),
# LOAD_H2_CONNS (32), LOAD_H2_STREAMS (10), LOAD_PROXY_CPU (1), LOAD_CLIENT_CPU (0),
# LOAD_WORKERS (residency-proxy `workers`; default 1 when the config knows the key),
# LOAD_RESULTS_DIR, LOAD_SKIP_BUILD=1 (use the existing target/release/residency-proxy),
# LOAD_BIN=path (measure that residency-proxy binary, e.g. an older build; implies no build).
set -euo pipefail

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

if ((QUICK)); then
    ROUNDS=${LOAD_ROUNDS:-1} DURATION=${LOAD_DURATION:-5} WARMUP=${LOAD_WARMUP:-1}
else
    ROUNDS=${LOAD_ROUNDS:-3} DURATION=${LOAD_DURATION:-10} WARMUP=${LOAD_WARMUP:-2}
fi
read -r -a CONNS <<<"${LOAD_CONNS:-32 256}"
H2_CONNS=${LOAD_H2_CONNS:-32}
H2_STREAMS=${LOAD_H2_STREAMS:-10}
PROXY_CPU=${LOAD_PROXY_CPU:-1}
CLIENT_CPU=${LOAD_CLIENT_CPU:-0}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
LOAD_DIR="$REPO_ROOT/benches/load"
REQUEST="$LOAD_DIR/request.json"
RESPONSE="$LOAD_DIR/response.json"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${LOAD_RESULTS_DIR:-$REPO_ROOT/target/load-results/$STAMP}

log() { printf '[load] %s\n' "$*" >&2; }
die() {
    printf '\n[load] ERROR: %s\n' "$*" >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# Processes we start, and cleanup on any exit.
# ---------------------------------------------------------------------------------------------
NOTES=()     # printed under the summary
PIDS=()      # long-running servers (nginx masters, their workers, residency-proxy)
AUX_PIDS=()  # samplers
WORK=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${AUX_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    local i
    for i in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ -d "$RESULTS" ]]; then
            mkdir -p "$RESULTS/logs"
            cp "$WORK"/*.log "$RESULTS/logs/" 2>/dev/null || true
            cp "$WORK/mock/error.log" "$RESULTS/logs/mock-error.log" 2>/dev/null || true
            cp "$WORK/nginx/error.log" "$RESULTS/logs/nginx-error.log" 2>/dev/null || true
        fi
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 1. Tools and the binary.
# ---------------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]} and not root: install them first"
        SUDO=(sudo)
    fi
    log "installing ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

[[ -f "$REQUEST" && -f "$RESPONSE" ]] || die "fixtures missing in $LOAD_DIR"
[[ $(wc -c <"$REQUEST") -eq 971 ]] || die "request.json must be 971 bytes"
[[ $(wc -c <"$RESPONSE") -eq 665 ]] || die "response.json must be 665 bytes"

BIN="${LOAD_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/residency-proxy}"
if [[ "${LOAD_SKIP_BUILD:-0}" != 1 && -z "${LOAD_BIN:-}" ]]; then
    log "building: cargo build --release --locked --bin residency-proxy (first build: a few minutes)"
    cargo build --release --locked --bin residency-proxy >&2 || die "cargo build failed"
fi
[[ -x "$BIN" ]] || die "no binary at $BIN"

ncpu=$(nproc)
if ((ncpu < 2)); then
    log "WARNING: only $ncpu CPU visible: client and proxy share it, figures mean little"
    PROXY_CPU=0 CLIENT_CPU=0
fi

# Enough descriptors for 256+ client and upstream connections per process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
[[ $FD_LIMIT == unlimited ]] && FD_LIMIT=65536

WORK=$(mktemp -d "${TMPDIR:-/tmp}/residency-load.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$RESULTS/raw"

# ---------------------------------------------------------------------------------------------
# Ports: the preferred ones, or the next free ones.
# ---------------------------------------------------------------------------------------------
USED_PORTS=" "
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # VAR PREFERRED
    local p=$2
    while [[ $USED_PORTS == *" $p "* ]] || port_busy "$p"; do p=$((p + 1)); done
    USED_PORTS+="$p "
    printf -v "$1" '%s' "$p"
}
pick_port MOCK_PORT 18090
pick_port NGINX_PORT 18091
pick_port NGINX_H2_PORT 18092
pick_port RP_PORT 18093
pick_port RP_ADMIN_PORT 18094

wait_port() { # PORT PID NAME
    local i
    for i in $(seq 100); do
        port_busy "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# 2-3. nginx: mock upstream and reference proxy (each its own prefix, never the system service).
# ---------------------------------------------------------------------------------------------
nginx_common() { # DIR
    local d=$1
    mkdir -p "$d/logs" "$d/tmp"
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile $FD_LIMIT;
pid $d/nginx.pid;
error_log $d/error.log warn;
events {
    worker_connections $((FD_LIMIT / 2 < 16384 ? FD_LIMIT / 2 : 16384));
}
EOF
}
nginx_http_common() { # DIR
    local d=$1
    cat <<EOF
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    # Keep client connections open for the whole run (the default closes after 1000 requests).
    keepalive_timeout 300s;
    keepalive_requests 10000000;
EOF
}

MOCK_DIR="$WORK/mock"
mkdir -p "$MOCK_DIR"
{
    nginx_common "$MOCK_DIR"
    echo "http {"
    nginx_http_common "$MOCK_DIR"
    cat <<EOF
    server {
        listen 127.0.0.1:$MOCK_PORT backlog=4096;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$(cat "$RESPONSE")';
        }
        location / {
            return 404;
        }
    }
}
EOF
} >"$MOCK_DIR/nginx.conf"

REF_DIR="$WORK/nginx"
mkdir -p "$REF_DIR"
{
    nginx_common "$REF_DIR"
    echo "http {"
    nginx_http_common "$REF_DIR"
    cat <<EOF
    upstream mock_upstream {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        listen 127.0.0.1:$NGINX_H2_PORT http2 backlog=4096;
        location / {
            proxy_pass http://mock_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$REF_DIR/nginx.conf"

start_nginx() { # DIR NAME -> sets LAST_MASTER, LAST_WORKERS
    local d=$1 name=$2
    "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" 2>"$WORK/$name-configtest.log" ||
        die "nginx config for $name is invalid: $(cat "$WORK/$name-configtest.log")"
    taskset -c "$PROXY_CPU" "$NGINX" -p "$d" -c "$d/nginx.conf" -g 'daemon off;' \
        >"$WORK/$name.log" 2>&1 &
    LAST_MASTER=$!
    PIDS+=("$LAST_MASTER")
}
nginx_workers() { # MASTER_PID
    local w
    w=$(ps -o pid= --ppid "$1" 2>/dev/null | tr -s ' \n' ' ' || true)
    echo "$w"
}

start_nginx "$MOCK_DIR" mock
MOCK_MASTER=$LAST_MASTER
wait_port "$MOCK_PORT" "$MOCK_MASTER" || die "mock upstream did not start: $(cat "$WORK/mock.log" "$MOCK_DIR/error.log" 2>/dev/null)"
start_nginx "$REF_DIR" nginx
NGINX_MASTER=$LAST_MASTER
wait_port "$NGINX_PORT" "$NGINX_MASTER" || die "reference nginx did not start: $(cat "$WORK/nginx.log" "$REF_DIR/error.log" 2>/dev/null)"
sleep 0.3
read -r -a MOCK_WORKERS <<<"$(nginx_workers "$MOCK_MASTER")"
read -r -a NGINX_WORKERS <<<"$(nginx_workers "$NGINX_MASTER")"
PIDS+=("${MOCK_WORKERS[@]}" "${NGINX_WORKERS[@]}")
((${#MOCK_WORKERS[@]} && ${#NGINX_WORKERS[@]})) || die "nginx workers not found"

# ---------------------------------------------------------------------------------------------
# 4. residency-proxy.
# ---------------------------------------------------------------------------------------------
WORKERS_LINE=""
if [[ -n "${LOAD_WORKERS:-}" ]]; then
    WORKERS_LINE="workers = $LOAD_WORKERS"
elif grep -q 'pub workers' crates/proxy/src/config/raw.rs 2>/dev/null; then
    WORKERS_LINE="workers = 1"
fi
cat >"$WORK/proxy.toml" <<EOF
listen = "127.0.0.1:$RP_PORT"
admin_listen = "127.0.0.1:$RP_ADMIN_PORT"
$WORKERS_LINE

[upstream]
base_urls = { eu = "http://127.0.0.1:$MOCK_PORT" }

[log]
level = "warn"

[[projects]]
name = "bench"
region = "eu"
retention = "zdr"
default = true
EOF
"$BIN" check --config "$WORK/proxy.toml" >"$WORK/proxy-check.log" 2>&1 ||
    die "residency-proxy rejects the bench config:
$(cat "$WORK/proxy-check.log")
config:
$(cat "$WORK/proxy.toml")"
taskset -c "$PROXY_CPU" "$BIN" serve --config "$WORK/proxy.toml" >"$WORK/proxy.log" 2>&1 &
RP_PID=$!
PIDS+=("$RP_PID")
if ! wait_port "$RP_PORT" "$RP_PID"; then
    state="still running after 10 s"
    kill -0 "$RP_PID" 2>/dev/null || state="exited ($(wait "$RP_PID" && echo status 0 || echo status $?))"
    die "residency-proxy ($BIN) did not start listening on $RP_PORT: process $state; its output:
$(tail -n 30 "$WORK/proxy.log")"
fi

cp "$MOCK_DIR/nginx.conf" "$RESULTS/mock-nginx.conf"
cp "$REF_DIR/nginx.conf" "$RESULTS/reference-nginx.conf"
cp "$WORK/proxy.toml" "$RESULTS/residency-proxy.toml"

# Sanity: one request through each path before any load.
check_post() { # NAME URL EXPECT_DECISION(or -) [curl args...]
    local name=$1 url=$2 expect=$3
    shift 3
    local code
    code=$(curl -sS -o "$WORK/check-$name.body" -D "$WORK/check-$name.headers" -w '%{http_code}' \
        --max-time 5 "$@" -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer sk-bench' --data-binary "@$REQUEST" "$url" 2>&1) || code="curl-failed: $code"
    local decision
    decision=$(tr -d '\r' <"$WORK/check-$name.headers" 2>/dev/null |
        awk -F': *' 'tolower($1)=="x-residency-decision"{print $2}' | tail -n 1)
    if [[ $code != 200 || ($expect != - && $decision != "$expect") ]]; then
        printf '\n[load] %s check failed: status %s, x-residency-decision "%s" (expected 200, "%s")\n' \
            "$name" "$code" "$decision" "$expect" >&2
        {
            printf '%s check: status %s, x-residency-decision "%s" (expected 200, "%s")\n' \
                "$name" "$code" "$decision" "$expect"
            echo "---- curl -v ----"
            curl -sS -v --max-time 5 "$@" -H 'Content-Type: application/json' \
                -H 'Authorization: Bearer sk-bench' --data-binary "@$REQUEST" "$url" 2>&1 || true
            echo
        } >"$WORK/check-$name-failure.txt"
        cat "$WORK/check-$name-failure.txt" >&2
        cp "$WORK/check-$name-failure.txt" "$RESULTS/" 2>/dev/null || true
        NOTES+=("$name: sanity check failed (status $code, decision \"$decision\"); see $RESULTS/check-$name-failure.txt")
        return 1
    fi
    local size
    size=$(wc -c <"$WORK/check-$name.body")
    [[ $size -eq 665 ]] || log "WARNING: $name answered $size body bytes, expected the mock's 665"
    return 0
}
check_post mock "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" - ||
    die "the mock upstream does not answer POST /v1/chat/completions with 200"
ctype=$(tr -d '\r' <"$WORK/check-mock.headers" | awk -F': *' 'tolower($1)=="content-type"{print $2}')
[[ $ctype == application/json* ]] || die "mock upstream content-type is '$ctype', not application/json"
check_post nginx "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" - ||
    die "reference nginx does not answer 200"
check_post residency-proxy "http://127.0.0.1:$RP_PORT/v1/chat/completions" rewrite ||
    die "residency-proxy does not answer 200 with x-residency-decision: rewrite (proxy log:
$(tail -n 20 "$WORK/proxy.log"))"
cp "$WORK/check-residency-proxy.headers" "$RESULTS/residency-proxy-response.headers"
"$BIN" explain --config "$WORK/proxy.toml" POST /v1/chat/completions --body "$REQUEST" \
    >"$RESULTS/explain.json" 2>&1 || true

H2_TARGETS=()
if check_post nginx-h2 "http://127.0.0.1:$NGINX_H2_PORT/v1/chat/completions" - --http2-prior-knowledge; then
    H2_TARGETS+=(nginx)
else
    log "WARNING: nginx h2c check failed; HTTP/2 row for nginx skipped"
    NOTES+=("h2 nginx: skipped")
fi
if check_post residency-proxy-h2 "http://127.0.0.1:$RP_PORT/v1/chat/completions" rewrite --http2-prior-knowledge; then
    H2_TARGETS+=(residency-proxy)
else
    log "WARNING: residency-proxy h2c check failed; HTTP/2 row for residency-proxy skipped"
    NOTES+=("h2 residency-proxy: skipped (no ratio)")
fi

# ---------------------------------------------------------------------------------------------
# Probes: RSS, CPU time, context switches (from /proc).
# ---------------------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
target_pids() { # TARGET
    case $1 in
        nginx) echo "${NGINX_WORKERS[*]}" ;; # the worker serves; the idle master is left out
        residency-proxy) echo "$RP_PID" ;;
    esac
}
target_url() { # TARGET PROTO
    case $1/$2 in
        nginx/h1) echo "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" ;;
        nginx/h2) echo "http://127.0.0.1:$NGINX_H2_PORT/v1/chat/completions" ;;
        residency-proxy/*) echo "http://127.0.0.1:$RP_PORT/v1/chat/completions" ;;
    esac
}
rss_kib() { # PIDS... -> summed VmRSS in KiB
    local p s=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
cpu_ticks() { # PIDS... -> utime+stime summed (all threads)
    local p s=0 v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
ctx_switches() { # PIDS... -> voluntary+involuntary, all threads
    local p s=0 v
    for p in "$@"; do
        v=$(cat /proc/"$p"/task/*/status 2>/dev/null |
            awk '/^(voluntary|nonvoluntary)_ctxt_switches:/{s+=$2} END{print s+0}' || true)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
start_rss_sampler() { # OUTFILE PIDS...
    local out=$1
    shift
    local pids="$*"
    taskset -c "$CLIENT_CPU" bash -c '
        out=$1; shift
        while :; do
            s=0
            for p in "$@"; do
                v=$(awk "/^VmRSS:/{print \$2}" /proc/$p/status 2>/dev/null)
                s=$((s + ${v:-0}))
            done
            echo $s >>"$out"
            sleep 0.25
        done' _ "$out" $pids &
    SAMPLER_PID=$!
    AUX_PIDS+=("$SAMPLER_PID")
}
stop_rss_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
}

to_ms() { # wrk latency like 635.91us / 1.20ms / 2.01s -> ms
    awk -v v="$1" 'BEGIN{
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# runs.tsv: one line per measured run.
RUNS="$RESULTS/runs.tsv"
printf 'proto\ttarget\tconns\tround\treq_s\tp50_ms\tp99_ms\trequests\terrors\trss_max_kib\trss_after_kib\tcpu_us_per_req\tmock_cpu_us_per_req\tmock_csw_per_req\n' >"$RUNS"

measure() { # PROTO(h1|h2) TARGET CONNS ROUND(0 = warm-up) SECONDS
    local proto=$1 target=$2 conns=$3 round=$4 secs=$5
    local url pids out
    url=$(target_url "$target" "$proto")
    read -r -a pids <<<"$(target_pids "$target")"
    if ((round == 0)); then
        out="$WORK/warmup.txt"
    else
        out="$RESULTS/raw/$proto-$target-c$conns-r$round.txt"
    fi
    local rssf="$WORK/rss.samples"
    : >"$rssf"
    local cpu0 mcpu0 mcsw0
    cpu0=$(cpu_ticks "${pids[@]}")
    mcpu0=$(cpu_ticks "${MOCK_WORKERS[@]}")
    mcsw0=$(ctx_switches "${MOCK_WORKERS[@]}")
    start_rss_sampler "$rssf" "${pids[@]}"
    if [[ $proto == h1 ]]; then
        BENCH_BODY="$REQUEST" taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${secs}s" \
            -s "$LOAD_DIR/post.lua" --latency "$url" >"$out" 2>&1 || echo "wrk exit $?" >>"$out"
    else
        taskset -c "$CLIENT_CPU" h2load -t1 -c"$conns" -m"$H2_STREAMS" -D"$secs" \
            -d "$REQUEST" -H 'content-type: application/json' -H 'authorization: Bearer sk-bench' \
            "$url" >"$out" 2>&1 || echo "h2load exit $?" >>"$out"
    fi
    stop_rss_sampler
    local cpu1 mcpu1 mcsw1
    cpu1=$(cpu_ticks "${pids[@]}")
    mcpu1=$(cpu_ticks "${MOCK_WORKERS[@]}")
    mcsw1=$(ctx_switches "${MOCK_WORKERS[@]}")
    sleep 1
    local rss_after rss_max
    rss_after=$(rss_kib "${pids[@]}")
    rss_max=$(sort -n "$rssf" | tail -n 1)
    ((round == 0)) && return 0

    local rps p50 p99 requests errors
    if [[ $proto == h1 ]]; then
        rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
        p50=$(awk '$1=="50%"{print $2}' "$out")
        p99=$(awk '$1=="99%"{print $2}' "$out")
        [[ -n $p50 ]] && p50=$(to_ms "$p50")
        [[ -n $p99 ]] && p99=$(to_ms "$p99")
        requests=$(awk '/ requests in /{print $1}' "$out")
        errors=$(awk '/Non-2xx or 3xx responses:/{e+=$NF}
            /Socket errors:/{gsub(/,/,""); e+=$4+$6+$8+$10} END{print e+0}' "$out")
    else
        rps=$(awk '/^finished in/{print $4}' "$out")
        # h2load has no percentiles: p50 column holds the mean time per request.
        p50=$(awk '/^time for request:/{print $6}' "$out")
        [[ -n $p50 ]] && p50=$(to_ms "$p50")
        p99=""
        requests=$(awk '/^requests:/{print $2}' "$out")
        errors=$(awk '/^requests:/{e+=$10+$12+$14} /^status codes:/{e+=$5+$7+$9} END{print e+0}' "$out")
    fi
    local cpu_us mcpu_us mcsw
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="${requests:-0}" -v hz="$CLK_TCK" \
        'BEGIN{ if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "" }')
    mcpu_us=$(awk -v a="$mcpu0" -v b="$mcpu1" -v n="${requests:-0}" -v hz="$CLK_TCK" \
        'BEGIN{ if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "" }')
    mcsw=$(awk -v a="$mcsw0" -v b="$mcsw1" -v n="${requests:-0}" \
        'BEGIN{ if (n > 0) printf "%.2f", (b - a) / n; else print "" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proto" "$target" "$conns" \
        "$round" "${rps:-}" "${p50:-}" "${p99:-}" "${requests:-}" "${errors:-}" "${rss_max:-}" \
        "$rss_after" "$cpu_us" "$mcpu_us" "$mcsw" >>"$RUNS"
    log "$(printf '%-3s %-16s c=%-4s round %s: %10s req/s  p50 %8s ms  p99 %8s ms  errors %s  rss max %s KiB' \
        "$proto" "$target" "$conns" "$round" "${rps:-?}" "${p50:-?}" "${p99:-?}" "${errors:-?}" "${rss_max:-?}")"
}

# ---------------------------------------------------------------------------------------------
# 5-6. The runs: per connection count, warm up both, then alternate nginx / residency-proxy.
# ---------------------------------------------------------------------------------------------
RSS_IDLE_START="nginx=$(rss_kib "${NGINX_WORKERS[@]}") residency-proxy=$(rss_kib "$RP_PID")"
{
    echo "date_utc=$STAMP"
    echo "git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')"
    echo "mode=$( ((QUICK)) && echo quick || echo full) rounds=$ROUNDS duration_s=$DURATION warmup_s=$WARMUP conns=${CONNS[*]}"
    echo "h2: conns=$H2_CONNS streams=$H2_STREAMS targets=${H2_TARGETS[*]:-none}"
    echo "cpus=$ncpu proxy_cpu=$PROXY_CPU client_cpu=$CLIENT_CPU"
    echo "kernel=$(uname -r)"
    echo "nginx=$("$NGINX" -v 2>&1 | sed 's/.*: //') wrk=$(wrk -v 2>&1 | head -n 1 | awk '{print $2}') h2load=$(h2load --version | awk '{print $2}')"
    echo "residency_proxy_config_workers=${WORKERS_LINE:-absent (one per visible CPU)}"
    echo "residency_proxy_bin=$BIN sha256=$(sha256sum "$BIN" | cut -c1-16)"
    echo "ports: mock=$MOCK_PORT nginx=$NGINX_PORT nginx_h2c=$NGINX_H2_PORT residency-proxy=$RP_PORT admin=$RP_ADMIN_PORT"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rss_idle_start_kib: $RSS_IDLE_START"
} >"$RESULTS/meta.txt"
log "results in $RESULTS (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"

TARGETS=(nginx residency-proxy)
for c in "${CONNS[@]}"; do
    for t in "${TARGETS[@]}"; do measure h1 "$t" "$c" 0 "$WARMUP"; done
    for r in $(seq "$ROUNDS"); do
        for t in "${TARGETS[@]}"; do measure h1 "$t" "$c" "$r" "$DURATION"; done
    done
done
if ((${#H2_TARGETS[@]})); then
    for t in "${H2_TARGETS[@]}"; do measure h2 "$t" "$H2_CONNS" 0 "$WARMUP"; done
    for r in $(seq "$ROUNDS"); do
        for t in "${H2_TARGETS[@]}"; do measure h2 "$t" "$H2_CONNS" "$r" "$DURATION"; done
    done
fi
{
    echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rss_idle_end_kib: nginx=$(rss_kib "${NGINX_WORKERS[@]}") residency-proxy=$(rss_kib "$RP_PID")"
} >>"$RESULTS/meta.txt"
kill -0 "$RP_PID" 2>/dev/null || NOTES+=("WARNING: residency-proxy exited during the run (see $RESULTS/logs/proxy.log)")

# ---------------------------------------------------------------------------------------------
# 7. Summary: medians per (proto, target, conns) and the ratios residency-proxy / nginx.
# ---------------------------------------------------------------------------------------------
awk -F'\t' -v rounds="$ROUNDS" -v dur="$DURATION" '
function median(key, col,    n, i, j, t, a, s) {
    n = split(vals[key, col], a, " ")
    # drop empty fields
    j = 0
    for (i = 1; i <= n; i++) if (a[i] != "") b[++j] = a[i] + 0
    n = j
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j+1] = b[j]; b[j+1] = t }
    return (n % 2) ? b[(n+1)/2] : (b[n/2] + b[n/2+1]) / 2
}
function fmt(v, f) { return (v == "") ? "-" : sprintf(f, v) }
function mib(v) { return (v == "") ? "-" : sprintf("%.1f", v / 1024) }
function ratio(a, b, f) { return (a == "" || b == "" || b == 0) ? "-" : sprintf(f, a / b) }
NR == 1 { next }
{
    key = $1 SUBSEP $2 SUBSEP $3
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    for (c = 5; c <= 14; c++) vals[key, c] = vals[key, c] " " $c
    errs[key] += $9
    lastafter[key] = $11
}
END {
    printf "\nLoad benchmark: medians of %d round(s) of %d s (rss: max under load / 1 s after the last run)\n\n", rounds, dur
    hdr = sprintf("%-5s %-16s %5s %10s %8s %8s %9s %9s %8s %8s %8s %7s", "proto", "target", "conns", "req/s", "p50 ms", "p99 ms", "rss MiB", "after MiB", "cpu us/r", "mock us/r", "mock cs/r", "errors")
    print hdr
    gsub(/./, "-", hdr); print hdr
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, p, SUBSEP)
        rps[k] = median(k, 5); p99[k] = median(k, 7)
        p50lbl = fmt(median(k, 6), "%.2f")
        printf "%-5s %-16s %5s %10s %8s %8s %9s %9s %8s %8s %8s %7d\n", p[1], p[2], p[3],
            fmt(rps[k], "%.0f"), p50lbl, fmt(p99[k], "%.2f"), mib(median(k, 10)), mib(lastafter[k]),
            fmt(median(k, 12), "%.1f"), fmt(median(k, 13), "%.1f"), fmt(median(k, 14), "%.2f"), errs[k]
    }
    printf "\nratios residency-proxy / nginx (same run):\n"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, p, SUBSEP)
        if (p[2] != "residency-proxy") continue
        n = p[1] SUBSEP "nginx" SUBSEP p[3]
        if (!(n in seen)) continue
        if (p[1] == "h1")
            printf "  %s c=%-4s throughput %s   p99 %s\n", p[1], p[3], ratio(rps[k], rps[n], "%.2fx"), ratio(p99[k], p99[n], "%.2fx")
        else
            printf "  %s c=%-4s throughput %s   (h2load: p50 column is the mean time per request; no p99)\n", p[1], p[3], ratio(rps[k], rps[n], "%.2fx")
    }
    for (i = 1; i <= nk; i++) if (errs[order[i]] > 0) { split(order[i], p, SUBSEP); printf "  WARNING: %s %s c=%s had %d failed/non-2xx responses: its req/s is not comparable\n", p[1], p[2], p[3], errs[order[i]] }
}' "$RUNS" | tee "$RESULTS/summary.txt"
{
    echo
    echo "conditions: $(grep -E '^(git_rev|mode|loadavg_start|loadavg_end|residency_proxy_config_workers|residency_proxy_bin)' "$RESULTS/meta.txt" | tr '\n' ' ')"
    for n in "${NOTES[@]}"; do echo "note: $n"; done
    echo "rss: VmRSS of residency-proxy, of the nginx worker (master left out)."
    echo "cpu us/r: CPU time of the target (residency-proxy all threads; nginx worker) per request on the shared core; mock us/r and cs/r: the mock upstream's CPU time and context switches per request."
    echo "raw outputs: $RESULTS"
} | tee -a "$RESULTS/summary.txt"
exit 0
