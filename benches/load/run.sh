#!/usr/bin/env bash
# Load benchmark: residency-proxy against nginx and HAProxy, on the shapes of LLM traffic.
#
#   bash benches/load/run.sh                  # every shape, 3 interleaved rounds of 10 s (~17 min)
#   bash benches/load/run.sh --quick          # every shape, 1 round of 5 s (~5 min)
#   bash benches/load/run.sh --shape stream   # one shape (a comma list selects several)
#
# Shapes (benches/load/README.md explains them):
#   json    h1 c=32, h1 c=256 and h2 c=32: the fixed 971-byte chat POST, 665-byte answer
#   stream  token streams: chat with "stream": true, the upstream (crates/mock-openai) writes
#           ~100-byte SSE events one by one; events/s, CPU per event, time to first event
#   body    inspected bodies of 16 KiB, 256 KiB, 1 MiB (long messages and a base64 image part,
#           a US project); MB/s and CPU per MB
#   idle    10,000 idle keep-alive client connections plus 32 busy ones: RSS per idle
#           connection, and the busy load's p99
# Each target (nginx, HAProxy, residency-proxy with the shipped default config) runs behind
# the same upstream on the same pinned core (CPU 1); the load generator runs on CPU 0. Rounds
# alternate the targets, and the summary gives residency-proxy against the better of the two
# peers at each load. It reports; it does not gate: exit 0 once the measurements ran, 2 when
# the setup cannot be brought up.
#
# Environment: LOAD_ROUNDS, LOAD_DURATION (s), LOAD_WARMUP (s), LOAD_CONNS ("32 256"),
# LOAD_H2_CONNS (32), LOAD_H2_STREAMS (10), LOAD_STREAM_EVENTS ("500"), LOAD_STREAM_CONNS (32),
# LOAD_BODY_SIZES ("16384 262144 1048576"), LOAD_BODY_CONNS (16), LOAD_IDLE_CONNS ("10000"),
# LOAD_IDLE_BUSY (32), LOAD_PROXY_CPU (1), LOAD_CLIENT_CPU (0), LOAD_WORKERS (residency-proxy
# `workers`; default: unset, as shipped), LOAD_PEERS ("nginx haproxy"), LOAD_RESULTS_DIR,
# LOAD_SKIP_BUILD=1, LOAD_BIN=path (measure that binary; implies no build), LOAD_BASE_BIN=path
# (also measure that binary as target "rp-base" in the same rounds: before/after in one run),
# LOAD_BASE_WORKERS (its `workers`).
set -euo pipefail

usage() {
    sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

QUICK=0
SHAPES="json stream body idle"
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --shape) shift; SHAPES=${1:-}; [[ -n $SHAPES ]] || { echo "run.sh: --shape needs a value" >&2; exit 2; } ;;
        --shape=*) SHAPES=${1#--shape=} ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
SHAPES=${SHAPES//,/ }
for s in $SHAPES; do
    case $s in json | stream | body | idle) ;; *) echo "run.sh: unknown shape: $s (json stream body idle)" >&2; exit 2 ;; esac
done

if ((QUICK)); then
    ROUNDS=${LOAD_ROUNDS:-1} DURATION=${LOAD_DURATION:-5} WARMUP=${LOAD_WARMUP:-1}
else
    ROUNDS=${LOAD_ROUNDS:-3} DURATION=${LOAD_DURATION:-10} WARMUP=${LOAD_WARMUP:-2}
fi
read -r -a CONNS <<<"${LOAD_CONNS:-32 256}"
H2_CONNS=${LOAD_H2_CONNS:-32}
H2_STREAMS=${LOAD_H2_STREAMS:-10}
read -r -a STREAM_EVENTS <<<"${LOAD_STREAM_EVENTS:-500}"
STREAM_CONNS=${LOAD_STREAM_CONNS:-32}
read -r -a BODY_SIZES <<<"${LOAD_BODY_SIZES:-16384 262144 1048576}"
BODY_CONNS=${LOAD_BODY_CONNS:-16}
read -r -a IDLE_CONNS <<<"${LOAD_IDLE_CONNS:-10000}"
IDLE_BUSY=${LOAD_IDLE_BUSY:-32}
PROXY_CPU=${LOAD_PROXY_CPU:-1}
CLIENT_CPU=${LOAD_CLIENT_CPU:-0}
read -r -a PEERS <<<"${LOAD_PEERS:-nginx haproxy}"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
LOAD_DIR="$REPO_ROOT/benches/load"
REQUEST="$LOAD_DIR/request.json"
RESPONSE="$LOAD_DIR/response.json"
TOOL="$LOAD_DIR/loadtool.py"
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
PIDS=()      # servers of the current shape (upstream, nginx masters and workers, haproxy, proxies)
AUX_PIDS=()  # samplers, probes, idle-connection holders
WORK=""

stop_pids() { # PIDS...
    local pid i alive
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 50); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${AUX_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    ((${#PIDS[@]})) && stop_pids "${PIDS[@]}"
    wait 2>/dev/null || true
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ -d "$RESULTS" ]]; then
            mkdir -p "$RESULTS/logs"
            cp "$WORK"/*.log "$RESULTS/logs/" 2>/dev/null || true
        fi
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 1. Tools and the binaries.
# ---------------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
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
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

[[ -f "$REQUEST" && -f "$RESPONSE" ]] || die "fixtures missing in $LOAD_DIR"
[[ $(wc -c <"$REQUEST") -eq 971 ]] || die "request.json must be 971 bytes"
[[ $(wc -c <"$RESPONSE") -eq 665 ]] || die "response.json must be 665 bytes"

RELEASE_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"
BIN="${LOAD_BIN:-$RELEASE_DIR/residency-proxy}"
MOCK_BIN="$RELEASE_DIR/mock-openai"
if [[ "${LOAD_SKIP_BUILD:-0}" != 1 ]]; then
    bins=(--bin mock-openai)
    [[ -z "${LOAD_BIN:-}" ]] && bins+=(--bin residency-proxy)
    log "building: cargo build --release --locked ${bins[*]} (first build: a few minutes)"
    cargo build --release --locked "${bins[@]}" >&2 || die "cargo build failed"
fi
[[ -x "$BIN" ]] || die "no binary at $BIN"
[[ -x "$MOCK_BIN" || ! " $SHAPES " == *" stream "* ]] || die "no mock-openai binary at $MOCK_BIN"
BASE_BIN=${LOAD_BASE_BIN:-}
[[ -z $BASE_BIN || -x $BASE_BIN ]] || die "LOAD_BASE_BIN=$BASE_BIN is not executable"

ncpu=$(nproc)
if ((ncpu < 2)); then
    log "WARNING: only $ncpu CPU visible: client and proxy share it, figures mean little"
    PROXY_CPU=0 CLIENT_CPU=0
fi

# Descriptors: 10,000 idle client connections plus upstream connections per process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
[[ $FD_LIMIT == unlimited ]] && FD_LIMIT=65536

WORK=$(mktemp -d "${TMPDIR:-/tmp}/residency-load.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$RESULTS/raw" "$RESULTS/config"

TARGETS=("${PEERS[@]}" residency-proxy)
[[ -n $BASE_BIN ]] && TARGETS+=(rp-base)

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
wait_port() { # PORT PID
    local i
    for i in $(seq 100); do
        port_busy "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# 2. Per shape: an upstream and the three targets in front of it, each with its own config
#    (own prefix, never a system service), started fresh and stopped after the shape.
# ---------------------------------------------------------------------------------------------
declare -A TPIDS TPORT TPORT_H2
nginx_conf() { # DIR PORT H2PORT UPSTREAM_PORT SHAPE
    local d=$1 port=$2 h2port=$3 up=$4 shape=$5
    mkdir -p "$d/logs" "$d/tmp"
    local wc=$((FD_LIMIT - 100 < 30000 ? FD_LIMIT - 100 : 30000))
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile $FD_LIMIT;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $wc; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    client_max_body_size 64m;
    client_body_buffer_size 2m;
EOF
    if [[ $up == mock ]]; then
        cat <<EOF
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$(cat "$RESPONSE")';
        }
        location / { return 404; }
    }
}
EOF
        return
    fi
    cat <<EOF
    upstream bench_upstream {
        server 127.0.0.1:$up;
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        listen 127.0.0.1:$h2port http2 backlog=4096;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            $([[ $shape == stream ]] && echo "proxy_buffering off;")
        }
    }
}
EOF
}
haproxy_conf() { # PORT H2PORT UPSTREAM_PORT
    cat <<EOF
global
    nbthread 1
    # 10,000 idle client connections: more than half the descriptor limit, which HAProxy would
    # otherwise reserve for as many server connections (it warns and runs).
    maxconn $((FD_LIMIT * 6 / 10))
    no strict-limits
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 300s
    timeout http-keep-alive 300s
    http-reuse always
    option http-buffer-request
frontend bench
    bind 127.0.0.1:$1 backlog 4096
    bind 127.0.0.1:$2 proto h2 backlog 4096
    default_backend upstream
backend upstream
    server up 127.0.0.1:$3
EOF
}
rp_conf() { # PORT ADMIN_PORT UPSTREAM_PORT SHAPE WORKERS
    local region=eu
    [[ $4 == body ]] && region=us
    cat <<EOF
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
${5:+workers = $5}
EOF
    # 10,000 idle connections plus the busy ones are over the default max_connections.
    [[ $4 == idle ]] && printf '\n[limits]\nmax_connections = %s\n' "$FD_LIMIT"
    cat <<EOF

[upstream]
base_urls = { $region = "http://127.0.0.1:$3" }

[log]
level = "warn"

[[projects]]
name = "bench"
region = "$region"
retention = "zdr"
default = true
EOF
}

start_target() { # TARGET SHAPE UPSTREAM_PORT
    local t=$1 shape=$2 up=$3 d="$WORK/$1-$2" port h2port admin pid
    mkdir -p "$d"
    pick_port port 18091
    pick_port h2port 18091
    TPORT[$t]=$port TPORT_H2[$t]=$h2port
    case $t in
        nginx)
            nginx_conf "$d" "$port" "$h2port" "$up" "$shape" >"$d/nginx.conf"
            "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" 2>"$WORK/nginx-configtest.log" ||
                die "nginx config is invalid: $(cat "$WORK/nginx-configtest.log")"
            taskset -c "$PROXY_CPU" "$NGINX" -p "$d" -c "$d/nginx.conf" -g 'daemon off;' >"$WORK/nginx-$shape.log" 2>&1 &
            pid=$!
            PIDS+=("$pid")
            wait_port "$port" "$pid" || die "nginx did not start: $(cat "$d/error.log" 2>/dev/null)"
            sleep 0.2
            # The worker serves; the idle master is left out of RSS and CPU.
            TPIDS[$t]=$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ')
            read -r -a ws <<<"${TPIDS[$t]}"
            PIDS+=("${ws[@]}")
            cp "$d/nginx.conf" "$RESULTS/config/nginx-$shape.conf"
            ;;
        haproxy)
            haproxy_conf "$port" "$h2port" "$up" >"$d/haproxy.cfg"
            "$HAPROXY" -c -q -f "$d/haproxy.cfg" >"$WORK/haproxy-configtest.log" 2>&1 ||
                die "haproxy config is invalid: $(cat "$WORK/haproxy-configtest.log")"
            taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$d/haproxy.cfg" >"$WORK/haproxy-$shape.log" 2>&1 &
            pid=$!
            PIDS+=("$pid")
            wait_port "$port" "$pid" || die "haproxy did not start: $(cat "$WORK/haproxy-$shape.log")"
            TPIDS[$t]=$pid
            cp "$d/haproxy.cfg" "$RESULTS/config/haproxy-$shape.cfg"
            ;;
        residency-proxy | rp-base)
            local bin=$BIN workers=${LOAD_WORKERS:-}
            [[ $t == rp-base ]] && bin=$BASE_BIN workers=${LOAD_BASE_WORKERS:-${LOAD_WORKERS:-}}
            pick_port admin 18099
            rp_conf "$port" "$admin" "$up" "$shape" "$workers" >"$d/proxy.toml"
            "$bin" check --config "$d/proxy.toml" >"$WORK/$t-check.log" 2>&1 ||
                die "$t rejects the bench config: $(cat "$WORK/$t-check.log" "$d/proxy.toml")"
            taskset -c "$PROXY_CPU" "$bin" serve --config "$d/proxy.toml" >"$WORK/$t-$shape.log" 2>&1 &
            pid=$!
            PIDS+=("$pid")
            wait_port "$port" "$pid" || die "$t did not start: $(tail -n 30 "$WORK/$t-$shape.log")"
            TPIDS[$t]=$pid
            TPORT_H2[$t]=$port
            cp "$d/proxy.toml" "$RESULTS/config/$t-$shape.toml"
            ;;
    esac
}

UP_PIDS=()
start_shape() { # SHAPE
    local shape=$1 pid up
    PIDS=()
    pick_port UP_PORT 18090
    if [[ $shape == stream ]]; then
        taskset -c "$PROXY_CPU" "$MOCK_BIN" --listen "127.0.0.1:$UP_PORT" --name bench >"$WORK/mock-openai.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_port "$UP_PORT" "$pid" || die "mock-openai did not start: $(cat "$WORK/mock-openai.log")"
        UP_PIDS=("$pid")
    else
        nginx_conf "$WORK/mock-$shape" "$UP_PORT" 0 mock "$shape" >"$WORK/mock-$shape.conf"
        taskset -c "$PROXY_CPU" "$NGINX" -p "$WORK/mock-$shape" -c "$WORK/mock-$shape.conf" -g 'daemon off;' >"$WORK/mock-$shape.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_port "$UP_PORT" "$pid" || die "mock nginx did not start: $(cat "$WORK/mock-$shape/error.log" 2>/dev/null)"
        sleep 0.2
        read -r -a UP_PIDS <<<"$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ')"
        PIDS+=("${UP_PIDS[@]}")
    fi
    local t
    for t in "${TARGETS[@]}"; do start_target "$t" "$shape" "$UP_PORT"; done
}
stop_shape() {
    ((${#PIDS[@]})) && stop_pids "${PIDS[@]}"
    PIDS=()
}

# Sanity: one request through each target before any load of a shape.
check() { # NAME URL BODY HEADERS [curl args...]
    local name=$1 url=$2 body=$3 headers=$4
    shift 4
    local hargs=() h code
    IFS='|' read -r -a hs <<<"$headers"
    for h in "${hs[@]}"; do [[ -n $h ]] && hargs+=(-H "$h"); done
    code=$(curl -sS -o "$WORK/check.body" -D "$WORK/check.headers" -w '%{http_code}' --max-time 10 "$@" \
        -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench' "${hargs[@]}" \
        --data-binary "@$body" "$url" 2>&1) || code="curl-failed: $code"
    if [[ $code != 200 ]]; then
        {
            echo "$name: status $code"
            curl -sS -v --max-time 10 "$@" -H 'Content-Type: application/json' \
                -H 'Authorization: Bearer sk-bench' "${hargs[@]}" --data-binary "@$body" "$url" 2>&1 | head -c 4000 || true
        } >"$RESULTS/check-$name-failure.txt"
        log "$name check failed (status $code): see $RESULTS/check-$name-failure.txt"
        return 1
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# 3. Probes: RSS, CPU time, context switches (from /proc).
# ---------------------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
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
        done' _ "$out" "$@" &
    SAMPLER_PID=$!
    AUX_PIDS+=("$SAMPLER_PID")
}
stop_aux() { # PID
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
to_ms() { # wrk latency like 635.91us / 1.20ms / 2.01s -> ms
    awk -v v="$1" 'BEGIN{
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
per_req() { # A B N SCALE FORMAT
    awk -v a="$1" -v b="$2" -v n="$3" -v s="$4" -v f="$5" 'BEGIN{ if (n > 0) printf f, (b - a) * s / n; else print "" }'
}

RUNS="$RESULTS/runs.tsv"
printf 'shape\tload\ttarget\tround\trate\tp50_ms\tp99_ms\trequests\terrors\trss_max_kib\trss_after_kib\tcpu_us_per_req\tmock_us_per_req\tmock_cs_per_req\tunits_per_req\tttfe_p50_ms\tttfe_p99_ms\tidle_conns\trss_base_kib\trss_idle_kib\n' >"$RUNS"

# One measured run. EXTRA: "ttfe" runs the time-to-first-event probe beside the load;
# IDLE_INFO: "N BASE_KIB IDLE_KIB" for the idle shape.
measure() { # SHAPE LOAD TARGET ROUND SECONDS PROTO CONNS BODY HEADERS UNITS EXTRA [IDLE_INFO]
    local shape=$1 load=$2 target=$3 round=$4 secs=$5 proto=$6 conns=$7 body=$8 headers=$9 units=${10} extra=${11} idle=${12:-}
    local pids url out tag
    read -r -a pids <<<"${TPIDS[$target]}"
    if [[ $proto == h2 ]]; then url="http://127.0.0.1:${TPORT_H2[$target]}/v1/chat/completions"
    else url="http://127.0.0.1:${TPORT[$target]}/v1/chat/completions"; fi
    tag="$shape-${load// /_}-$target-r$round"
    tag=${tag//=/}
    if ((round == 0)); then out="$WORK/warmup.txt"; else out="$RESULTS/raw/$tag.txt"; fi
    local rssf="$WORK/rss.samples"
    : >"$rssf"
    local cpu0 mcpu0 mcsw0 probe_pid=""
    cpu0=$(cpu_ticks "${pids[@]}")
    mcpu0=$(cpu_ticks "${UP_PIDS[@]}")
    mcsw0=$(ctx_switches "${UP_PIDS[@]}")
    start_rss_sampler "$rssf" "${pids[@]}"
    if [[ $extra == ttfe ]] && ((round > 0)); then
        taskset -c "$CLIENT_CPU" python3 "$TOOL" ttfe "$url" "$((secs > 1 ? secs - 1 : 1))" "$headers" >"$WORK/ttfe.out" 2>&1 &
        probe_pid=$!
        AUX_PIDS+=("$probe_pid")
    fi
    if [[ $proto == h1 ]]; then
        BENCH_BODY="$body" BENCH_HEADERS="$headers" taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${secs}s" \
            --timeout 30s -s "$LOAD_DIR/post.lua" --latency "$url" >"$out" 2>&1 || echo "wrk exit $?" >>"$out"
    else
        taskset -c "$CLIENT_CPU" h2load -t1 -c"$conns" -m"$H2_STREAMS" -D"$secs" \
            -d "$body" -H 'content-type: application/json' -H 'authorization: Bearer sk-bench' \
            "$url" >"$out" 2>&1 || echo "h2load exit $?" >>"$out"
    fi
    local ttfe50="" ttfe99=""
    if [[ -n $probe_pid ]]; then
        wait "$probe_pid" 2>/dev/null || true
        read -r _ ttfe50 ttfe99 _ <"$WORK/ttfe.out" || true
        [[ $ttfe50 == - ]] && ttfe50="" ttfe99=""
        cp "$WORK/ttfe.out" "$RESULTS/raw/$tag.ttfe.txt"
    fi
    stop_aux "$SAMPLER_PID"
    local cpu1 mcpu1 mcsw1
    cpu1=$(cpu_ticks "${pids[@]}")
    mcpu1=$(cpu_ticks "${UP_PIDS[@]}")
    mcsw1=$(ctx_switches "${UP_PIDS[@]}")
    sleep 0.5
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
        p50=$(awk '/^time for request:/{print $6}' "$out") # h2load: the mean, no percentiles
        [[ -n $p50 ]] && p50=$(to_ms "$p50")
        p99=""
        requests=$(awk '/^requests:/{print $2}' "$out")
        errors=$(awk '/^requests:/{e+=$10+$12+$14} /^status codes:/{e+=$5+$7+$9} END{print e+0}' "$out")
    fi
    local cpu_us mcpu_us mcsw n_idle="" base="" held=""
    cpu_us=$(per_req "$cpu0" "$cpu1" "${requests:-0}" "$((1000000 / CLK_TCK))" '%.2f')
    mcpu_us=$(per_req "$mcpu0" "$mcpu1" "${requests:-0}" "$((1000000 / CLK_TCK))" '%.2f')
    mcsw=$(per_req "$mcsw0" "$mcsw1" "${requests:-0}" 1 '%.3f')
    [[ -n $idle ]] && read -r n_idle base held <<<"$idle"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$shape" "$load" "$target" "$round" "${rps:-}" "${p50:-}" "${p99:-}" "${requests:-}" "${errors:-}" \
        "${rss_max:-}" "$rss_after" "$cpu_us" "$mcpu_us" "$mcsw" "$units" "$ttfe50" "$ttfe99" \
        "$n_idle" "$base" "$held" >>"$RUNS"
    log "$(printf '%-6s %-14s %-16s r%s: %9s req/s  p99 %8s ms  cpu %7s us/r  errors %s  rss %s KiB%s' \
        "$shape" "$load" "$target" "$round" "${rps:-?}" "${p99:-?}" "${cpu_us:-?}" "${errors:-?}" "${rss_max:-?}" \
        "${ttfe50:+  ttfe p50 $ttfe50 ms}${n_idle:+  idle $n_idle: $base -> $held KiB}")"
}

# Warm-up of every target, then ROUNDS rounds alternating them.
rounds() { # SHAPE LOAD PROTO CONNS BODY HEADERS UNITS EXTRA
    local t r
    for t in "${TARGETS[@]}"; do measure "$1" "$2" "$t" 0 "$WARMUP" "$3" "$4" "$5" "$6" "$7" "$8"; done
    for r in $(seq "$ROUNDS"); do
        for t in "${TARGETS[@]}"; do measure "$1" "$2" "$t" "$r" "$DURATION" "$3" "$4" "$5" "$6" "$7" "$8"; done
    done
}

check_all() { # SHAPE BODY HEADERS [curl args]
    local shape=$1 body=$2 headers=$3 t
    shift 3
    for t in "${TARGETS[@]}"; do
        check "$shape-$t" "http://127.0.0.1:${TPORT[$t]}/v1/chat/completions" "$body" "$headers" "$@" ||
            die "$t does not answer 200 for the $shape shape (see $RESULTS/check-$shape-$t-failure.txt)"
    done
}

# ---------------------------------------------------------------------------------------------
# 4. The shapes.
# ---------------------------------------------------------------------------------------------
shape_json() {
    start_shape json
    check_all json "$REQUEST" ""
    local c t h2=()
    for c in "${CONNS[@]}"; do rounds json "h1 c=$c" h1 "$c" "$REQUEST" "" 1 ""; done
    for t in "${TARGETS[@]}"; do
        if check "json-h2-$t" "http://127.0.0.1:${TPORT_H2[$t]}/v1/chat/completions" "$REQUEST" "" --http2-prior-knowledge; then
            h2+=("$t")
        else
            NOTES+=("h2 $t: h2c check failed, row skipped")
        fi
    done
    local saved=("${TARGETS[@]}")
    TARGETS=("${h2[@]}")
    ((${#TARGETS[@]})) && rounds json "h2 c=$H2_CONNS" h2 "$H2_CONNS" "$REQUEST" "" 1 ""
    TARGETS=("${saved[@]}")
    stop_shape
}

shape_stream() {
    start_shape stream
    local body="$WORK/stream.json" n
    printf '{"model":"gpt-4o-2024-08-06","stream":true,"messages":[{"role":"user","content":"Write a long story."}]}' >"$body"
    for n in "${STREAM_EVENTS[@]}"; do
        check_all stream "$body" "x-mock-behavior: events:$n"
        # events per response: n data events and [DONE]
        rounds stream "events=$n c=$STREAM_CONNS" h1 "$STREAM_CONNS" "$body" "x-mock-behavior: events:$n" "$((n + 1))" ttfe
    done
    stop_shape
}

shape_body() {
    start_shape body
    local size body
    for size in "${BODY_SIZES[@]}"; do
        body="$WORK/body-$size.json"
        python3 "$TOOL" body "$size" "$body" || die "cannot generate a $size-byte body"
        check_all body "$body" ""
        rounds body "$((size / 1024))KiB c=$BODY_CONNS" h1 "$BODY_CONNS" "$body" "" "$size" ""
    done
    stop_shape
}

# Idle connections: every round starts the targets fresh, so "before" is a process that has
# not yet held the connections (glibc keeps freed memory, which would hide the cost later).
shape_idle() {
    local n r t pids base held ready holder ok failed i
    for n in "${IDLE_CONNS[@]}"; do
        for r in $(seq 0 "$ROUNDS"); do
            ((r == 0)) && [[ $QUICK == 1 ]] && continue
            start_shape idle
            ((r == 0)) && check_all idle "$REQUEST" ""
            for t in "${TARGETS[@]}"; do
                read -r -a pids <<<"${TPIDS[$t]}"
                # Warm the target with the busy load first, so the baseline holds the busy path.
                measure idle "$n idle + $IDLE_BUSY busy" "$t" 0 "$WARMUP" h1 "$IDLE_BUSY" "$REQUEST" "" 1 ""
                base=$(rss_kib "${pids[@]}")
                ready="$WORK/idle.ready"
                rm -f "$ready"
                taskset -c "$CLIENT_CPU" python3 "$TOOL" idle 127.0.0.1 "${TPORT[$t]}" "$n" "$REQUEST" "$ready" >"$WORK/idle-holder.log" 2>&1 &
                holder=$!
                AUX_PIDS+=("$holder")
                for i in $(seq 1200); do
                    [[ -f $ready ]] && break
                    kill -0 "$holder" 2>/dev/null || break
                    sleep 0.1
                done
                [[ -f $ready ]] || die "the idle-connection holder did not open $n connections to $t: $(tail -n 5 "$WORK/idle-holder.log")"
                read -r ok failed <"$ready"
                ((failed == 0)) || NOTES+=("idle $t round $r: $failed of $n idle connections failed")
                sleep 1
                held=$(rss_kib "${pids[@]}")
                ((r > 0)) && measure idle "$n idle + $IDLE_BUSY busy" "$t" "$r" "$DURATION" h1 "$IDLE_BUSY" "$REQUEST" "" 1 "" "$ok $base $held"
                stop_aux "$holder"
            done
            stop_shape
        done
    done
}

{
    echo "date_utc=$STAMP"
    echo "git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')"
    echo "mode=$( ((QUICK)) && echo quick || echo full) rounds=$ROUNDS duration_s=$DURATION warmup_s=$WARMUP shapes=$SHAPES"
    echo "targets=${TARGETS[*]} cpus=$ncpu proxy_cpu=$PROXY_CPU client_cpu=$CLIENT_CPU fd_limit=$FD_LIMIT"
    echo "kernel=$(uname -r)"
    echo "nginx=$("$NGINX" -v 2>&1 | sed 's/.*: //') haproxy=$("$HAPROXY" -v | head -n 1 | awk '{print $3}') wrk=$(wrk -v 2>&1 | head -n 1 | awk '{print $2}') h2load=$(h2load --version | awk '{print $2}')"
    echo "residency_proxy_workers=${LOAD_WORKERS:-unset (shipped default)}"
    echo "residency_proxy_bin=$BIN sha256=$(sha256sum "$BIN" | cut -c1-16)"
    [[ -n $BASE_BIN ]] && echo "rp_base_bin=$BASE_BIN sha256=$(sha256sum "$BASE_BIN" | cut -c1-16) workers=${LOAD_BASE_WORKERS:-${LOAD_WORKERS:-unset}}"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RESULTS/meta.txt"
log "results in $RESULTS (load average now: $(cut -d' ' -f1-3 /proc/loadavg)); targets: ${TARGETS[*]}"

for s in $SHAPES; do "shape_$s"; done

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/meta.txt"

# ---------------------------------------------------------------------------------------------
# 5. Summary: medians per (shape, load, target) and residency-proxy against the better peer.
# ---------------------------------------------------------------------------------------------
{
    printf '\nLoad benchmark: medians of %s round(s) of %s s; ratios are residency-proxy / the better of %s at that load\n' \
        "$ROUNDS" "$DURATION" "${PEERS[*]}"
    python3 "$TOOL" summary "$RUNS"
    echo
    echo "conditions: $(grep -E '^(git_rev|mode|loadavg_start|loadavg_end|residency_proxy_workers)' "$RESULTS/meta.txt" | tr '\n' ' ')"
    for n in "${NOTES[@]}"; do echo "note: $n"; done
    echo "cpu: CPU time of the target (residency-proxy: all threads; nginx: the worker; haproxy: its one process) per request / event / MB, on the core it shares with the upstream."
    echo "raw outputs: $RESULTS"
} | tee "$RESULTS/summary.txt"
exit 0
