#!/usr/bin/env python3
"""Helpers for benches/load/run.sh (standard library only).

  loadtool.py body SIZE OUT            write a chat request of SIZE bytes: long messages and one
                                       base64 image part (about a quarter of the body)
  loadtool.py ttfe URL SECONDS HDRS    time to first SSE event of streamed chat requests, one
                                       after another for SECONDS; prints "count p50_ms p99_ms"
  loadtool.py idle HOST PORT N BODY READY
                                       open N keep-alive connections, send BODY as one POST on each,
                                       read the answer, hold them; writes "ok FAILED" to READY
                                       once all are open, then waits to be killed
  loadtool.py summary RUNS.tsv         the medians and ratios table of a run
"""

import asyncio
import base64
import json
import random
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit


# ------------------------------------------------------------------------------------------------
def make_body(size):
    rng = random.Random(size)
    words = ["the", "residency", "proxy", "token", "stream", "naïve", "café", "日本語", "request",
             "policy", "\"quoted\"", "line\nbreak", "tab\there", "model", "zero", "retention"]

    def text(n):
        out, length = [], 0
        while length < n:
            w = rng.choice(words)
            out.append(w)
            length += len(json.dumps(w)) - 1
        return " ".join(out)

    image = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(max(size // 4, 64) * 3 // 4)))
    messages = [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image.decode()}},
        ]},
    ]
    req = {"model": "gpt-4o-2024-08-06", "store": True, "messages": messages}

    def encoded():
        return json.dumps(req, ensure_ascii=False).encode()

    role = "assistant"
    while len(encoded()) + 2200 < size:
        messages.append({"role": role, "content": text(2000)})
        role = "user" if role == "assistant" else "assistant"
    messages.append({"role": role, "content": ""})
    # Pad the last message to the exact size (ASCII letters: one byte each).
    missing = size - len(encoded())
    if missing < 0:
        raise SystemExit(f"body: cannot make {size} bytes")
    messages[-1]["content"] = "x" * missing
    data = encoded()
    assert len(data) == size, (len(data), size)
    return data


# ------------------------------------------------------------------------------------------------
def ttfe(url, seconds, headers):
    u = urlsplit(url)
    body = json.dumps({"model": "gpt-4o-2024-08-06", "stream": True,
                       "messages": [{"role": "user", "content": "Say hello."}]}).encode()
    extra = "".join(f"{h.strip()}\r\n" for h in headers.split("|") if h.strip())
    req = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
           f"Authorization: Bearer sk-bench\r\n{extra}Content-Length: {len(body)}\r\n"
           "Connection: close\r\n\r\n").encode() + body
    samples, failed = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection((u.hostname, u.port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.monotonic()
            s.sendall(req)
            buf, first = b"", None
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                if first is None:
                    buf += chunk
                    head_end = buf.find(b"\r\n\r\n")
                    if head_end >= 0 and buf.find(b"data:", head_end) >= 0:
                        first = time.monotonic() - t0
                        if not buf.startswith(b"HTTP/1.1 200"):
                            first = None
                            break
            s.close()
            if first is None:
                failed += 1
            else:
                samples.append(first * 1000)
        except OSError:
            failed += 1
    if not samples:
        print(f"0 - - {failed}")
        return
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{len(samples)} {statistics.median(samples):.3f} {p99:.3f} {failed}")


# ------------------------------------------------------------------------------------------------
async def hold_one(host, port, request, sem, held):
    async with sem:
        try:
            r, w = await asyncio.open_connection(host, port)
            w.write(request)
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                w.close()
                return False
            length = None
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
                if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
                    chunked = True
            if length is not None:
                await r.readexactly(length)
            elif chunked:
                await r.readuntil(b"0\r\n\r\n")
            held.append((r, w))
            return True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False


async def idle(host, port, n, body_path, ready_path):
    with open(body_path, "rb") as f:
        body = f.read()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Content-Type: application/json\r\nAuthorization: Bearer sk-bench\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    sem = asyncio.Semaphore(64)
    held = []
    results = await asyncio.gather(*(hold_one(host, port, request, sem, held) for _ in range(n)))
    failed = sum(1 for ok in results if not ok)
    with open(ready_path + ".tmp", "w") as f:
        f.write(f"{len(held)} {failed}\n")
    import os
    os.replace(ready_path + ".tmp", ready_path)
    await asyncio.Event().wait()


# ------------------------------------------------------------------------------------------------
COLS = ["shape", "load", "target", "round", "rate", "p50_ms", "p99_ms", "requests", "errors",
        "rss_max_kib", "rss_after_kib", "cpu_us_per_req", "mock_us_per_req", "mock_cs_per_req",
        "units_per_req", "ttfe_p50_ms", "ttfe_p99_ms", "idle_conns", "rss_base_kib", "rss_idle_kib"]
PEERS = ["nginx", "haproxy"]


def med(rows, col):
    vals = [float(r[col]) for r in rows if r.get(col, "") not in ("", "-")]
    return statistics.median(vals) if vals else None


def fmt(v, f="{:.1f}"):
    return "-" if v is None else f.format(v)


def summary(path):
    rows = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    groups = {}
    for r in rows:
        groups.setdefault((r["shape"], r["load"]), {}).setdefault(r["target"], []).append(r)
    out = []
    p = out.append
    for (shape, load), by_target in groups.items():
        p("")
        p(f"== {shape} {load}")
        units = med(next(iter(by_target.values())), "units_per_req") or 1
        stats = {}
        for t, rs in by_target.items():
            rate, cpu = med(rs, "rate"), med(rs, "cpu_us_per_req")
            s = {
                "rate": rate, "p50": med(rs, "p50_ms"), "p99": med(rs, "p99_ms"),
                "rss": med(rs, "rss_max_kib"), "cpu": cpu, "errors": sum(int(r["errors"] or 0) for r in rs),
                "ttfe50": med(rs, "ttfe_p50_ms"), "ttfe99": med(rs, "ttfe_p99_ms"),
                "mock": med(rs, "mock_us_per_req"), "rounds": len(rs),
            }
            n_idle = med(rs, "idle_conns")
            if n_idle:
                deltas = [(float(r["rss_idle_kib"]) - float(r["rss_base_kib"])) * 1024 / float(r["idle_conns"])
                          for r in rs if r["rss_idle_kib"] and r["rss_base_kib"] and float(r["idle_conns"] or 0) > 0]
                s["per_idle"] = statistics.median(deltas) if deltas else None
                s["idle_conns"] = n_idle
                s["rss_idle"] = med(rs, "rss_idle_kib")
            if shape == "stream":
                s["unit_rate"] = rate * units if rate else None       # events/s
                s["unit_cpu"] = cpu / units if cpu else None          # us per event
            elif shape == "body":
                s["unit_rate"] = rate * units / 1e6 if rate else None  # MB/s
                s["unit_cpu"] = cpu * 1e6 / units / 1000 if cpu else None  # ms per MB
            else:
                s["unit_rate"], s["unit_cpu"] = rate, cpu
            stats[t] = s
        if shape == "stream":
            p(f"{'target':<18}{'events/s':>10}{'resp/s':>9}{'cpu us/event':>14}{'ttfe p50 ms':>13}"
              f"{'ttfe p99 ms':>13}{'resp p99 ms':>13}{'rss MiB':>9}{'errors':>8}")
            for t, s in stats.items():
                p(f"{t:<18}{fmt(s['unit_rate'], '{:.0f}'):>10}{fmt(s['rate'], '{:.1f}'):>9}"
                  f"{fmt(s['unit_cpu'], '{:.2f}'):>14}{fmt(s['ttfe50'], '{:.2f}'):>13}"
                  f"{fmt(s['ttfe99'], '{:.2f}'):>13}{fmt(s['p99'], '{:.1f}'):>13}"
                  f"{fmt(s['rss'] and s['rss'] / 1024):>9}{s['errors']:>8}")
        elif shape == "body":
            p(f"{'target':<18}{'MB/s':>9}{'req/s':>9}{'cpu ms/MB':>11}{'cpu us/req':>12}{'p99 ms':>9}"
              f"{'rss MiB':>9}{'errors':>8}")
            for t, s in stats.items():
                p(f"{t:<18}{fmt(s['unit_rate'], '{:.1f}'):>9}{fmt(s['rate'], '{:.0f}'):>9}"
                  f"{fmt(s['unit_cpu'], '{:.2f}'):>11}{fmt(s['cpu'], '{:.1f}'):>12}"
                  f"{fmt(s['p99'], '{:.2f}'):>9}{fmt(s['rss'] and s['rss'] / 1024):>9}{s['errors']:>8}")
        elif shape == "idle":
            p(f"{'target':<18}{'idle conns':>11}{'B/idle conn':>12}{'rss idle MiB':>13}{'busy req/s':>11}"
              f"{'busy p99 ms':>12}{'errors':>8}")
            for t, s in stats.items():
                p(f"{t:<18}{fmt(s.get('idle_conns'), '{:.0f}'):>11}{fmt(s.get('per_idle'), '{:.0f}'):>12}"
                  f"{fmt(s.get('rss_idle') and s['rss_idle'] / 1024):>13}{fmt(s['rate'], '{:.0f}'):>11}"
                  f"{fmt(s['p99'], '{:.2f}'):>12}{s['errors']:>8}")
        else:
            p(f"{'target':<18}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'cpu us/req':>11}{'mock us/r':>10}"
              f"{'rss MiB':>9}{'errors':>8}")
            for t, s in stats.items():
                p(f"{t:<18}{fmt(s['rate'], '{:.0f}'):>9}{fmt(s['p50'], '{:.2f}'):>8}{fmt(s['p99'], '{:.2f}'):>8}"
                  f"{fmt(s['cpu']):>11}{fmt(s['mock']):>10}{fmt(s['rss'] and s['rss'] / 1024):>9}{s['errors']:>8}")
        # Ratios of every residency-proxy target to the better peer at this load.
        peers = {t: s for t, s in stats.items() if t in PEERS and s["unit_rate"]}
        if not peers:
            continue
        best_name = max(peers, key=lambda t: peers[t]["unit_rate"])
        best = peers[best_name]
        for t, s in stats.items():
            if t in PEERS or not s["unit_rate"]:
                continue
            parts = [f"{t} / better peer ({best_name}): throughput {s['unit_rate'] / best['unit_rate']:.2f}x"]
            if s["p99"] and best["p99"]:
                parts.append(f"p99 {s['p99'] / best['p99']:.2f}x")
            if s["unit_cpu"] and best["unit_cpu"]:
                parts.append(f"cpu per unit {s['unit_cpu'] / best['unit_cpu']:.2f}x")
            if shape == "stream" and s["ttfe50"] and best["ttfe50"]:
                parts.append(f"ttfe p50 {s['ttfe50'] / best['ttfe50']:.2f}x")
            if shape == "idle":
                bp = min((v.get("per_idle") for v in peers.values() if v.get("per_idle") is not None),
                         default=None)
                if s.get("per_idle") is not None and bp:
                    parts.append(f"bytes per idle conn {s['per_idle']:.0f} vs best peer {bp:.0f}")
            p("  " + ", ".join(parts))
        for t, s in stats.items():
            if s["errors"]:
                p(f"  WARNING: {t} had {s['errors']} failed/non-2xx responses: not comparable")
    print("\n".join(out))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "body":
        with open(sys.argv[3], "wb") as f:
            f.write(make_body(int(sys.argv[2])))
    elif cmd == "ttfe":
        ttfe(sys.argv[2], float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
    elif cmd == "idle":
        try:
            asyncio.run(idle(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]))
        except KeyboardInterrupt:
            pass
    elif cmd == "summary":
        summary(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
