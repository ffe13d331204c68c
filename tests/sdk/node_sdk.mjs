// Drives the official `openai` Node SDK through residency-proxy.
//
// Run by tests/sdk.rs (cwd tests/sdk) with the proxy in front of recording mock upstreams. The
// SDK is configured the way a user configures it, from the environment only:
//
//   OPENAI_BASE_URL    http://127.0.0.1:PORT/v1 (the proxy; https://... with NODE_EXTRA_CA_CERTS)
//   OPENAI_API_KEY     anything
//   OPENAI_PROJECT_ID  the eu ZDR project's id (selects that project at the proxy)
//
// and, for the test's own bookkeeping:
//
//   RP_US_PROJECT, RP_EU_MAM_PROJECT   the other projects' ids
//   RP_ADMIN_URL       the proxy's admin listener, to count requests in /metrics
//   RP_ONLY            optional: comma-separated case names to run
//
// Prints one line per case, `PASS name` or `FAIL name: why`, and exits 1 if any case failed.

import OpenAI, { toFile } from 'openai';
import { VERSION } from 'openai/version';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const EU_MODEL = 'gpt-4o-2024-08-06';

function check(cond, why) {
  if (!cond) throw new Error(why);
}

function client(opts = {}) {
  return new OpenAI({ maxRetries: 0, timeout: 30_000, ...opts });
}

function usClient(opts = {}) {
  return client({ project: process.env.RP_US_PROJECT, ...opts });
}

function decisionOf(headers, region, allowed = ['allow']) {
  const d = headers.get('x-residency-decision');
  check(allowed.includes(d), `x-residency-decision ${JSON.stringify(d)}, wanted one of ${allowed}`);
  const r = headers.get('x-residency-region');
  check(r === region, `x-residency-region ${JSON.stringify(r)}, wanted ${region}`);
}

async function requestsTotal(...want) {
  const res = await fetch(process.env.RP_ADMIN_URL.replace(/\/$/, '') + '/metrics');
  const text = await res.text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('residency_proxy_requests_total{') && want.every((w) => line.includes(w))) {
      total += Math.trunc(Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
  }
  return total;
}

function wavBytes(ms = 250, rate = 8000) {
  const samples = Math.floor((rate * ms) / 1000);
  const buf = Buffer.alloc(44 + samples * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) buf.writeInt16LE(Math.floor(i / 9) % 2 === 0 ? 8000 : -8000, 44 + i * 2);
  return buf;
}

function batchLine(i, model) {
  const body = { model, messages: [{ role: 'user', content: `batch ${i}` }] };
  return JSON.stringify({ custom_id: `req-${i}`, method: 'POST', url: '/v1/chat/completions', body }) + '\n';
}

const REALTIME_MODEL = 'gpt-4o-realtime-preview-2024-12-17';

// Opens a realtime websocket through the SDK (OpenAIRealtimeWS on the `ws` package) and
// resolves with the first `n` events or rejects with the connection error.
function realtimeEvents(project, n, send) {
  return new Promise((resolve, reject) => {
    const c = client({ project });
    OpenAIRealtimeWS.create(c, { model: REALTIME_MODEL, options: { headers: { 'OpenAI-Project': project } } })
      .then((rt) => {
        const got = [];
        const done = (f) => {
          clearTimeout(timer);
          try {
            rt.close();
          } catch {}
          f();
        };
        const timer = setTimeout(() => done(() => reject(new Error(`timeout; got ${JSON.stringify(got)}`))), 10_000);
        rt.socket.on('unexpected-response', (_req, res) =>
          done(() => reject(new Error(`unexpected-response ${res.statusCode}`))),
        );
        rt.on('error', (e) => done(() => reject(e)));
        rt.socket.on('open', () => send(rt));
        rt.socket.on('message', (data) => {
          got.push(JSON.parse(String(data)));
          if (got.length >= n) done(() => resolve(got));
        });
      })
      .catch(reject);
  });
}

const cases = {
  async models_list() {
    const { data: page, response } = await client().models.list().withResponse();
    decisionOf(response.headers, 'eu');
    check(page.data.length > 0, 'empty model list');
  },

  async chat() {
    const { data, response } = await client()
      .chat.completions.create({ model: EU_MODEL, messages: [{ role: 'user', content: 'sdk-node chat' }] })
      .withResponse();
    decisionOf(response.headers, 'eu');
    check(data.object === 'chat.completion', `object ${data.object}`);
    check(data.choices.length >= 1 && data.choices[0].message, 'no choice/message');
  },

  async chat_stream() {
    const { data: stream, response } = await client()
      .chat.completions.create({
        model: EU_MODEL,
        messages: [{ role: 'user', content: 'sdk-node chat stream' }],
        stream: true,
      })
      .withResponse();
    decisionOf(response.headers, 'eu');
    const ctype = response.headers.get('content-type') ?? '';
    check(ctype.startsWith('text/event-stream'), `content-type ${ctype}`);
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    check(chunks.length >= 1, 'no chunks');
    check(
      chunks.every((c) => c.object === 'chat.completion.chunk'),
      'a chunk is not chat.completion.chunk',
    );
  },

  async responses() {
    const { data, response } = await client()
      .responses.create({ model: EU_MODEL, input: 'sdk-node responses' })
      .withResponse();
    // ZDR + store rewrite: an absent store is rewritten to store=false.
    decisionOf(response.headers, 'eu', ['allow', 'rewrite']);
    check(data.object === 'response', `object ${data.object}`);
  },

  async responses_stream() {
    const { data: stream, response } = await client()
      .responses.create({ model: EU_MODEL, input: 'sdk-node responses stream', stream: true })
      .withResponse();
    decisionOf(response.headers, 'eu', ['allow', 'rewrite']);
    const types = [];
    for await (const ev of stream) types.push(ev.type);
    check(types.length >= 1, 'no events');
    check(
      types.every((t) => typeof t === 'string' && t.startsWith('response.')),
      `event types ${types}`,
    );
  },

  async embeddings() {
    const { data, response } = await client()
      .embeddings.create({ model: 'text-embedding-3-small', input: 'sdk-node' })
      .withResponse();
    decisionOf(response.headers, 'eu');
    check(data.data.length >= 1, 'no embedding');
    const v = data.data[0].embedding;
    check(v.length > 0 && typeof v[0] === 'number', 'embedding not numbers');
  },

  async moderations() {
    const { data, response } = await client()
      .moderations.create({ model: 'omni-moderation-latest', input: 'sdk-node' })
      .withResponse();
    decisionOf(response.headers, 'eu');
    check(data.results.length >= 1, 'no moderation result');
  },

  async images() {
    const { data, response } = await usClient()
      .images.generate({ model: 'dall-e-3', prompt: 'sdk-node image', n: 1, size: '1024x1024' })
      .withResponse();
    decisionOf(response.headers, 'us');
    check(Array.isArray(data.data) && data.data.length >= 1, 'no image data');
  },

  async audio_transcription() {
    const file = await toFile(wavBytes(), 'sdk-node.wav', { type: 'audio/wav' });
    const { data, response } = await client()
      .audio.transcriptions.create({ model: 'whisper-1', file })
      .withResponse();
    decisionOf(response.headers, 'eu');
    check(typeof data.text === 'string', 'no transcription text');
  },

  async file_upload() {
    const file = await toFile(
      Buffer.from('{"messages":[{"role":"user","content":"sdk-node file"}]}\n'),
      'sdk-node.jsonl',
      { type: 'application/jsonl' },
    );
    const { data, response } = await usClient().files.create({ file, purpose: 'assistants' }).withResponse();
    decisionOf(response.headers, 'us');
    check(typeof data.id === 'string' && data.id !== '', 'no file id');
  },

  async batch_upload_allowed() {
    const text = [0, 1, 2].map((i) => batchLine(i, EU_MODEL)).join('');
    const file = await toFile(Buffer.from(text), 'sdk-node-batch.jsonl', { type: 'application/jsonl' });
    const { data, response } = await client({ project: process.env.RP_EU_MAM_PROJECT })
      .files.create({ file, purpose: 'batch' })
      .withResponse();
    decisionOf(response.headers, 'eu');
    check(typeof data.id === 'string', 'no file id');
  },

  async batch_upload_denied() {
    const text = batchLine(0, EU_MODEL) + batchLine(1, 'gpt-4o');
    const file = await toFile(Buffer.from(text), 'sdk-node-batch-bad.jsonl', { type: 'application/jsonl' });
    const before = await requestsTotal('decision="deny"');
    let err;
    try {
      await client({ project: process.env.RP_EU_MAM_PROJECT }).files.create({ file, purpose: 'batch' });
    } catch (e) {
      err = e;
    }
    check(err !== undefined, 'a batch line with an ineligible model was not refused');
    check(err instanceof OpenAI.PermissionDeniedError, `wanted PermissionDeniedError, got ${err?.constructor?.name} ${err?.status}`);
    check(err.code === 'residency_policy_violation', `code ${err.code}`);
    const after = await requestsTotal('decision="deny"');
    check(after - before === 1, `deny counter moved by ${after - before}, wanted 1`);
  },

  async uploads_batch_denied() {
    // The Uploads API (large files): a batch input cannot be line-checked across parts, so
    // its create call is refused and names POST /v1/files.
    const text = batchLine(0, EU_MODEL);
    const before = await requestsTotal('decision="deny"');
    let err;
    try {
      await client({ project: process.env.RP_EU_MAM_PROJECT }).uploads.create({
        bytes: Buffer.byteLength(text),
        filename: 'sdk-node-batch.jsonl',
        mime_type: 'application/jsonl',
        purpose: 'batch',
      });
    } catch (e) {
      err = e;
    }
    check(err !== undefined, 'a batch input through the Uploads API was not refused');
    check(err instanceof OpenAI.PermissionDeniedError, `wanted PermissionDeniedError, got ${err?.constructor?.name} ${err?.status}`);
    check(err.code === 'residency_policy_violation', `code ${err.code}`);
    check(String(err.message).includes('POST /v1/files'), `message ${err.message}`);
    const after = await requestsTotal('decision="deny"');
    check(after - before === 1, `deny counter moved by ${after - before}, wanted 1`);
  },

  async realtime() {
    const item = {
      type: 'conversation.item.create',
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'sdk-node realtime' }] },
    };
    const events = await realtimeEvents(process.env.RP_US_PROJECT, 2, (rt) => rt.send(item));
    check(events[0].type === 'session.created', `first event ${events[0].type}`);
    // The mock echoes client events: what the SDK sent comes back unchanged.
    check(JSON.stringify(events[1]) === JSON.stringify(item), `echo ${JSON.stringify(events[1])}`);
  },

  async realtime_denied() {
    const before = await requestsTotal('decision="deny"', 'endpoint="/v1/realtime"');
    let err;
    try {
      await realtimeEvents(process.env.OPENAI_PROJECT_ID, 1, () => {});
    } catch (e) {
      err = e;
    }
    check(err !== undefined, 'a realtime session was opened in an eu project');
    check(String(err?.message ?? err).includes('403'), `refusal does not carry the 403: ${err?.message ?? err}`);
    const after = await requestsTotal('decision="deny"', 'endpoint="/v1/realtime"');
    check(after - before === 1, `deny counter for /v1/realtime moved by ${after - before}, wanted 1`);
  },

  async denial_not_retried() {
    const c = client({ maxRetries: 2 });
    const before = await requestsTotal('decision="deny"');
    const beforeAll = await requestsTotal();
    let err;
    try {
      await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'sdk-node deny' }] });
    } catch (e) {
      err = e;
    }
    check(err !== undefined, 'gpt-4o (not a snapshot) was allowed in eu');
    check(
      err instanceof OpenAI.PermissionDeniedError,
      `wanted PermissionDeniedError, got ${err?.constructor?.name} ${err?.status}: ${err?.message}`,
    );
    check(err.status === 403, `status ${err.status}`);
    check(err.code === 'residency_policy_violation', `code ${err.code}`);
    check(err.type === 'invalid_request_error', `type ${err.type}`);
    check(err.headers.get('x-should-retry') === 'false', `x-should-retry ${err.headers.get('x-should-retry')}`);
    check(err.headers.get('x-residency-decision') === 'deny', 'x-residency-decision not deny');
    check(String(err.message).includes('eu'), `message does not name the region: ${err.message}`);
    const after = await requestsTotal('decision="deny"');
    const afterAll = await requestsTotal();
    check(after - before === 1, `deny counter moved by ${after - before}: the SDK retried a denial`);
    check(afterAll - beforeAll === 1, `${afterAll - beforeAll} requests reached the proxy, wanted 1`);
  },

  async upstream_5xx_retried() {
    // The proxy forwards upstream errors as they are: the SDK's own retry policy still applies.
    const c = client({ maxRetries: 2, defaultHeaders: { 'x-mock-behavior': 'status:500' } });
    const before = await requestsTotal('decision="allow"', 'endpoint="/v1/embeddings"');
    let err;
    try {
      await c.embeddings.create({ model: 'text-embedding-3-small', input: 'sdk-node retry' });
    } catch (e) {
      err = e;
    }
    check(
      err instanceof OpenAI.InternalServerError,
      `wanted InternalServerError, got ${err?.constructor?.name} ${err?.status}`,
    );
    const after = await requestsTotal('decision="allow"', 'endpoint="/v1/embeddings"');
    check(after - before === 3, `${after - before} attempts reached the proxy, wanted 3 (1 + 2 retries)`);
  },
};

async function main() {
  const only = new Set((process.env.RP_ONLY ?? '').split(',').filter(Boolean));
  console.log(`openai-node ${VERSION} (node ${process.version}) against ${process.env.OPENAI_BASE_URL}`);
  let failed = 0;
  for (const [name, fn] of Object.entries(cases)) {
    if (only.size && !only.has(name)) continue;
    try {
      await fn();
      console.log(`PASS ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${String(e?.stack ?? e).split('\n')[0]}`);
      console.error(e);
    }
  }
  process.exitCode = failed ? 1 : 0;
}

await main();
