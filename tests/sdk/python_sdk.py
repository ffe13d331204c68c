"""Drives the official `openai` Python SDK through residency-proxy.

Run by tests/sdk.rs with the proxy in front of recording mock upstreams. The SDK is configured
the way a user configures it, from the environment only:

  OPENAI_BASE_URL    http://127.0.0.1:PORT/v1 (the proxy; https://... with RP_CA_FILE)
  OPENAI_API_KEY     anything
  OPENAI_PROJECT_ID  the eu ZDR project's id (selects that project at the proxy)

and, for the test's own bookkeeping:

  RP_US_PROJECT      the us project (modified abuse monitoring) for images, files
  RP_ADMIN_URL       the proxy's admin listener, to count requests in /metrics
  RP_CA_FILE         optional: a PEM CA that signed the proxy's TLS certificate
  RP_ONLY            optional: comma-separated case names to run

Prints one line per case, `PASS name` or `FAIL name: why`, and exits 1 if any case failed.
"""

from __future__ import annotations

import io
import json
import os
import ssl
import struct
import sys
import traceback
import urllib.request

import openai

EU_MODEL = "gpt-4o-2024-08-06"
RESULTS: list[tuple[str, bool, str]] = []


def check(cond: bool, why: str) -> None:
    if not cond:
        raise AssertionError(why)


def client(**kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 30.0)
    ca = os.environ.get("RP_CA_FILE")
    if ca:
        kw["http_client"] = openai.DefaultHttpx2Client(verify=ssl.create_default_context(cafile=ca))
    return openai.OpenAI(**kw)


def us_client(**kw) -> openai.OpenAI:
    return client(project=os.environ["RP_US_PROJECT"], **kw)


def decision_of(headers, region: str, allowed=("allow",)) -> None:
    d = headers.get("x-residency-decision")
    check(d in allowed, f"x-residency-decision {d!r}, wanted one of {allowed}")
    r = headers.get("x-residency-region")
    check(r == region, f"x-residency-region {r!r}, wanted {region!r}")


def requests_total(*want: str) -> int:
    """Sum of residency_proxy_requests_total samples whose labels contain every fragment."""
    url = os.environ["RP_ADMIN_URL"].rstrip("/") + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as res:
        text = res.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("residency_proxy_requests_total{") and all(w in line for w in want):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def wav_bytes(ms: int = 250, rate: int = 8000) -> bytes:
    samples = rate * ms // 1000
    data = b"".join(struct.pack("<h", 8000 if (i // 9) % 2 == 0 else -8000) for i in range(samples))
    head = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return head + fmt + b"data" + struct.pack("<I", len(data)) + data


# --- cases -----------------------------------------------------------------------------------


def case_models_list() -> None:
    raw = client().models.with_raw_response.list()
    decision_of(raw.headers, "eu")
    page = raw.parse()
    ids = [m.id for m in page.data]
    check(len(ids) > 0, "empty model list")


def case_chat() -> None:
    raw = client().chat.completions.with_raw_response.create(
        model=EU_MODEL, messages=[{"role": "user", "content": "sdk-python chat"}]
    )
    decision_of(raw.headers, "eu")
    c = raw.parse()
    check(c.object == "chat.completion", f"object {c.object!r}")
    check(len(c.choices) >= 1 and c.choices[0].message is not None, "no choice/message")


def case_chat_stream() -> None:
    stream = client().chat.completions.create(
        model=EU_MODEL, messages=[{"role": "user", "content": "sdk-python chat stream"}], stream=True
    )
    decision_of(stream.response.headers, "eu")
    ctype = stream.response.headers.get("content-type", "")
    check(ctype.startswith("text/event-stream"), f"content-type {ctype!r}")
    chunks = list(stream)
    check(len(chunks) >= 1, "no chunks")
    check(all(ch.object == "chat.completion.chunk" for ch in chunks), "a chunk is not chat.completion.chunk")


def case_responses() -> None:
    raw = client().responses.with_raw_response.create(model=EU_MODEL, input="sdk-python responses")
    # ZDR + store rewrite: an absent store is rewritten to store=false.
    decision_of(raw.headers, "eu", ("allow", "rewrite"))
    r = raw.parse()
    check(r.object == "response", f"object {r.object!r}")


def case_responses_stream() -> None:
    stream = client().responses.create(model=EU_MODEL, input="sdk-python responses stream", stream=True)
    decision_of(stream.response.headers, "eu", ("allow", "rewrite"))
    events = list(stream)
    check(len(events) >= 1, "no events")
    types = [e.type for e in events]
    check(all(isinstance(t, str) and t.startswith("response.") for t in types), f"event types {types}")


def case_embeddings() -> None:
    raw = client().embeddings.with_raw_response.create(model="text-embedding-3-small", input="sdk-python")
    decision_of(raw.headers, "eu")
    e = raw.parse()
    check(len(e.data) >= 1, "no embedding")
    check(len(e.data[0].embedding) > 0 and isinstance(e.data[0].embedding[0], float), "embedding not floats")


def case_moderations() -> None:
    raw = client().moderations.with_raw_response.create(model="omni-moderation-latest", input="sdk-python")
    decision_of(raw.headers, "eu")
    m = raw.parse()
    check(len(m.results) >= 1, "no moderation result")


def case_images() -> None:
    raw = us_client().images.with_raw_response.generate(
        model="dall-e-3", prompt="sdk-python image", n=1, size="1024x1024"
    )
    decision_of(raw.headers, "us")
    img = raw.parse()
    check(img.data is not None and len(img.data) >= 1, "no image data")


def case_audio_transcription() -> None:
    raw = client().audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("sdk-python.wav", wav_bytes(), "audio/wav")
    )
    decision_of(raw.headers, "eu")
    t = raw.parse()
    check(isinstance(t.text, str), "no transcription text")


def case_file_upload() -> None:
    data = b'{"messages":[{"role":"user","content":"sdk-python file"}]}\n'
    raw = us_client().files.with_raw_response.create(
        file=("sdk-python.jsonl", io.BytesIO(data), "application/jsonl"), purpose="assistants"
    )
    decision_of(raw.headers, "us")
    f = raw.parse()
    check(isinstance(f.id, str) and f.id != "", "no file id")


def batch_line(i: int, model: str) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": f"batch {i}"}]}
    line = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
    return (json.dumps(line) + "\n").encode()


def case_batch_upload_allowed() -> None:
    data = b"".join(batch_line(i, EU_MODEL) for i in range(3))
    raw = client(project=os.environ["RP_EU_MAM_PROJECT"]).files.with_raw_response.create(
        file=("sdk-python-batch.jsonl", data, "application/jsonl"), purpose="batch"
    )
    decision_of(raw.headers, "eu")
    check(isinstance(raw.parse().id, str), "no file id")


def case_batch_upload_denied() -> None:
    data = batch_line(0, EU_MODEL) + batch_line(1, "gpt-4o")
    before = requests_total('decision="deny"')
    try:
        client(project=os.environ["RP_EU_MAM_PROJECT"]).files.create(
            file=("sdk-python-batch-bad.jsonl", data, "application/jsonl"), purpose="batch"
        )
    except openai.PermissionDeniedError as e:
        check(e.status_code == 403, f"status {e.status_code}")
        check(e.code == "residency_policy_violation", f"code {e.code!r}")
    else:
        raise AssertionError("a batch line with an ineligible model was not refused")
    after = requests_total('decision="deny"')
    check(after - before == 1, f"deny counter moved by {after - before}, wanted 1")


def case_uploads_batch_denied() -> None:
    # The SDK's large-file helper (the Uploads API): a batch input cannot be line-checked across
    # parts, so its create call is refused and names POST /v1/files; nothing is retried.
    data = batch_line(0, EU_MODEL)
    before = requests_total('decision="deny"')
    try:
        client(project=os.environ["RP_EU_MAM_PROJECT"]).uploads.upload_file_chunked(
            file=data, filename="sdk-python-batch.jsonl", bytes=len(data), mime_type="application/jsonl", purpose="batch"
        )
    except openai.PermissionDeniedError as e:
        check(e.status_code == 403, f"status {e.status_code}")
        check(e.code == "residency_policy_violation", f"code {e.code!r}")
        check("POST /v1/files" in str(e.message), f"message {e.message!r}")
    else:
        raise AssertionError("a batch input through the Uploads API was not refused")
    after = requests_total('decision="deny"')
    check(after - before == 1, f"deny counter moved by {after - before}, wanted 1")


def case_denial_not_retried() -> None:
    c = client(max_retries=2)
    before = requests_total('decision="deny"')
    before_all = requests_total()
    try:
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "sdk-python deny"}])
    except openai.PermissionDeniedError as e:
        check(e.status_code == 403, f"status {e.status_code}")
        check(e.code == "residency_policy_violation", f"code {e.code!r}")
        check(e.type == "invalid_request_error", f"type {e.type!r}")
        check(
            e.response.headers.get("x-should-retry") == "false",
            f"x-should-retry {e.response.headers.get('x-should-retry')!r}",
        )
        check(e.response.headers.get("x-residency-decision") == "deny", "x-residency-decision not deny")
        check("eu" in str(e.message), f"message does not name the region: {e.message!r}")
    except openai.APIStatusError as e:
        raise AssertionError(f"wanted PermissionDeniedError, got {type(e).__name__} {e.status_code}")
    else:
        raise AssertionError("gpt-4o (not a snapshot) was allowed in eu")
    after = requests_total('decision="deny"')
    after_all = requests_total()
    check(after - before == 1, f"deny counter moved by {after - before}: the SDK retried a denial")
    check(after_all - before_all == 1, f"{after_all - before_all} requests reached the proxy, wanted 1")


def case_upstream_5xx_retried() -> None:
    # The proxy forwards upstream errors as they are: the SDK's own retry policy still applies.
    c = client(max_retries=2, default_headers={"x-mock-behavior": "status:500"})
    before = requests_total('decision="allow"', 'endpoint="/v1/embeddings"')
    try:
        c.embeddings.create(model="text-embedding-3-small", input="sdk-python retry")
    except openai.InternalServerError as e:
        check(e.status_code == 500, f"status {e.status_code}")
    else:
        raise AssertionError("status:500 from the upstream did not surface as InternalServerError")
    after = requests_total('decision="allow"', 'endpoint="/v1/embeddings"')
    check(after - before == 3, f"{after - before} attempts reached the proxy, wanted 3 (1 + 2 retries)")


REALTIME_MODEL = "gpt-4o-realtime-preview-2024-12-17"


def case_realtime() -> None:
    with us_client().realtime.connect(model=REALTIME_MODEL, max_retries=0) as conn:
        first = conn.recv()
        check(first.type == "session.created", f"first event {first.type!r}")
        # The mock echoes client events: what the SDK sent comes back unchanged.
        conn.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "sdk-python realtime"}]}})
        raw = conn.recv_bytes()
        ev = json.loads(raw)
        check(ev.get("type") == "conversation.item.create", f"echo {raw[:200]!r}")
        check(ev["item"]["content"][0]["text"] == "sdk-python realtime", "echoed text changed")


def case_realtime_denied() -> None:
    before = requests_total('decision="deny"', 'endpoint="/v1/realtime"')
    try:
        # The SDK's own reconnect policy left at its default: a refusal must not be retried.
        with client().realtime.connect(model=REALTIME_MODEL) as conn:
            conn.recv()
    except Exception as e:  # noqa: BLE001 - the websocket library's refusal type varies
        text = f"{type(e).__name__}: {e}"
        check("403" in text, f"refusal does not carry the 403: {text}")
    else:
        raise AssertionError("a realtime session was opened in an eu project")
    after = requests_total('decision="deny"', 'endpoint="/v1/realtime"')
    check(after - before == 1, f"deny counter for /v1/realtime moved by {after - before}, wanted 1")


CASES = [
    ("models_list", case_models_list),
    ("chat", case_chat),
    ("chat_stream", case_chat_stream),
    ("responses", case_responses),
    ("responses_stream", case_responses_stream),
    ("embeddings", case_embeddings),
    ("moderations", case_moderations),
    ("images", case_images),
    ("audio_transcription", case_audio_transcription),
    ("file_upload", case_file_upload),
    ("batch_upload_allowed", case_batch_upload_allowed),
    ("batch_upload_denied", case_batch_upload_denied),
    ("uploads_batch_denied", case_uploads_batch_denied),
    ("realtime", case_realtime),
    ("realtime_denied", case_realtime_denied),
    ("denial_not_retried", case_denial_not_retried),
    ("upstream_5xx_retried", case_upstream_5xx_retried),
]


def main() -> int:
    only = {n for n in os.environ.get("RP_ONLY", "").split(",") if n}
    print(f"openai-python {openai.__version__} against {os.environ.get('OPENAI_BASE_URL')}", flush=True)
    failed = 0
    for name, fn in CASES:
        if only and name not in only:
            continue
        try:
            fn()
            print(f"PASS {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
            failed += 1
            why = f"{type(e).__name__}: {e}".replace("\n", " ")
            print(f"FAIL {name}: {why}", flush=True)
            traceback.print_exc(file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
