//! Response bodies in the shapes the official OpenAI SDKs parse.

use bytes::Bytes;
use serde_json::{json, Value};

/// The words a mock completion is made of; streamed one per delta.
pub(crate) fn words(upstream: &str) -> Vec<String> {
    ["Hello", " from", " mock-openai", " (", upstream, ")."]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

pub(crate) fn chat_completion(id: &str, created: u64, model: &str, text: &str) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_mock",
        "service_tier": "default",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": usage_chat(9, 7),
    })
}

fn usage_chat(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
        }
    })
}

fn sse_data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn sse_event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

/// `n` compact `chat.completion.chunk` events of about 100 bytes (a role, one token each, a
/// finish), then `data: [DONE]`: the load benchmark's token stream.
pub(crate) fn bench_stream(id: &str, n: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..n {
        let delta = if i == 0 {
            json!({"role": "assistant", "content": ""})
        } else {
            json!({"content": format!(" w{i}")})
        };
        let choice = if i + 1 == n {
            json!({"delta": delta, "finish_reason": "stop"})
        } else {
            json!({"delta": delta})
        };
        out.push(sse_data(&json!({
            "id": id, "object": "chat.completion.chunk", "choices": [choice]
        })));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// `chat.completion.chunk` events ending with `data: [DONE]`.
pub(crate) fn chat_stream(
    id: &str,
    created: u64,
    model: &str,
    deltas: &[String],
    include_usage: bool,
) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_mock", "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        })
    };
    let mut out = vec![sse_data(&chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    ))];
    for d in deltas {
        out.push(sse_data(&chunk(json!({"content": d}), Value::Null)));
    }
    out.push(sse_data(&chunk(json!({}), json!("stop"))));
    if include_usage {
        out.push(sse_data(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_mock", "choices": [], "usage": usage_chat(9, deltas.len() as u64)
        })));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

pub(crate) fn response_object(
    id: &str,
    msg_id: &str,
    created: u64,
    model: &str,
    text: Option<&str>,
    request: Option<&Value>,
) -> Value {
    let get = |k: &str, d: Value| request.and_then(|r| r.get(k)).cloned().unwrap_or(d);
    let (status, output, usage) = match text {
        Some(t) => (
            "completed",
            json!([{
                "type": "message", "id": msg_id, "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": t, "annotations": [], "logprobs": []}]
            }]),
            json!({
                "input_tokens": 9, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 16
            }),
        ),
        None => ("in_progress", json!([]), Value::Null),
    };
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": get("background", json!(false)),
        "error": null,
        "incomplete_details": null,
        "instructions": get("instructions", Value::Null),
        "max_output_tokens": get("max_output_tokens", Value::Null),
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": get("previous_response_id", Value::Null),
        "reasoning": {"effort": null, "summary": null},
        "service_tier": "default",
        "store": get("store", json!(true)),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": get("tools", json!([])),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": get("metadata", json!({})),
    })
}

/// The Responses API event sequence for one text message.
pub(crate) fn responses_stream(
    id: &str,
    msg_id: &str,
    created: u64,
    model: &str,
    deltas: &[String],
    request: Option<&Value>,
) -> Vec<Bytes> {
    let text: String = deltas.concat();
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut push = |name: &str, mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), json!(name));
            o.insert("sequence_number".into(), json!(seq));
        }
        seq += 1;
        out.push(sse_event(name, &v));
    };
    let pending = response_object(id, msg_id, created, model, None, request);
    push("response.created", json!({"response": pending}));
    push("response.in_progress", json!({"response": pending}));
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": {
            "type": "message", "id": msg_id, "status": "in_progress", "role": "assistant", "content": []
        }}),
    );
    push(
        "response.content_part.added",
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
    );
    for d in deltas {
        push(
            "response.output_text.delta",
            json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "delta": d, "logprobs": []}),
        );
    }
    push(
        "response.output_text.done",
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
    );
    push(
        "response.content_part.done",
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": {
            "type": "message", "id": msg_id, "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        }}),
    );
    let done = response_object(id, msg_id, created, model, Some(&text), request);
    push("response.completed", json!({"response": done}));
    out
}

/// A deterministic embedding of `dims` floats for input number `index`.
pub(crate) fn embedding_vector(index: usize, dims: usize) -> Vec<f32> {
    (0..dims)
        .map(|i| ((index * 31 + i * 7) % 100) as f32 / 100.0 - 0.5)
        .collect()
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How many embedding inputs a request's `input` holds.
pub(crate) fn input_count(input: Option<&Value>) -> usize {
    match input {
        Some(Value::Array(items)) if items.iter().all(|i| i.is_number()) => 1,
        Some(Value::Array(items)) => items.len().max(1),
        _ => 1,
    }
}

pub(crate) fn embeddings(request: Option<&Value>, model: &str) -> Value {
    let n = input_count(request.and_then(|r| r.get("input")));
    let dims = request
        .and_then(|r| r.get("dimensions"))
        .and_then(Value::as_u64)
        .map_or(8, |d| d.clamp(1, 4096) as usize);
    let base64_format = request
        .and_then(|r| r.get("encoding_format"))
        .and_then(Value::as_str)
        == Some("base64");
    let data: Vec<Value> = (0..n)
        .map(|i| {
            let v = embedding_vector(i, dims);
            let embedding = if base64_format {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 5 * n, "total_tokens": 5 * n}
    })
}

const MODERATION_CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

pub(crate) fn moderation(id: &str, request: Option<&Value>, model: &str) -> Value {
    let n = input_count(request.and_then(|r| r.get("input")));
    let mut categories = serde_json::Map::new();
    let mut scores = serde_json::Map::new();
    let mut applied = serde_json::Map::new();
    for c in MODERATION_CATEGORIES {
        categories.insert(c.into(), json!(false));
        scores.insert(c.into(), json!(0.0001));
        applied.insert(c.into(), json!(["text"]));
    }
    let result = json!({
        "flagged": false,
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    });
    json!({"id": id, "model": model, "results": vec![result; n]})
}

/// A 1x1 transparent PNG.
pub(crate) const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00,
    0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01,
    0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

pub(crate) fn images(created: u64, request: Option<&Value>, base_url: &str) -> Value {
    let n = request
        .and_then(|r| r.get("n"))
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 10);
    let model = request
        .and_then(|r| r.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("dall-e-2");
    let b64 = model.starts_with("gpt-image")
        || request
            .and_then(|r| r.get("response_format"))
            .and_then(Value::as_str)
            == Some("b64_json");
    let prompt = request
        .and_then(|r| r.get("prompt"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let data: Vec<Value> = (0..n)
        .map(|i| {
            if b64 {
                json!({"b64_json": base64(PNG_1X1), "revised_prompt": prompt})
            } else {
                json!({"url": format!("{base_url}/mock-images/{i}.png"), "revised_prompt": prompt})
            }
        })
        .collect();
    json!({"created": created, "data": data})
}

/// A few bytes that start like an MP3 stream (an ID3 tag and one frame header).
pub(crate) const MP3_BYTES: &[u8] =
    b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64\x00\x00\x00\x00mock-openai";

pub(crate) fn file_object(id: &str, created: u64, bytes: usize, filename: &str, purpose: &str) -> Value {
    json!({
        "id": id,
        "object": "file",
        "bytes": bytes,
        "created_at": created,
        "expires_at": null,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": null,
    })
}

pub(crate) fn list(data: Vec<Value>) -> Value {
    let first = data
        .first()
        .and_then(|v| v.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    let last = data
        .last()
        .and_then(|v| v.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": false})
}

pub(crate) const MODELS: [&str; 8] = [
    "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1-2025-04-14",
    "gpt-4o",
    "text-embedding-3-small",
    "dall-e-3",
    "whisper-1",
    "tts-1",
];

pub(crate) fn model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_715_367_049u64, "owned_by": "system"})
}

pub(crate) fn models() -> Value {
    json!({"object": "list", "data": MODELS.iter().map(|m| model(m)).collect::<Vec<_>>()})
}

pub(crate) fn batch(id: &str, created: u64, request: Option<&Value>) -> Value {
    let get = |k: &str, d: Value| request.and_then(|r| r.get(k)).cloned().unwrap_or(d);
    json!({
        "id": id,
        "object": "batch",
        "endpoint": get("endpoint", json!("/v1/chat/completions")),
        "errors": null,
        "input_file_id": get("input_file_id", Value::Null),
        "completion_window": get("completion_window", json!("24h")),
        "status": "validating",
        "output_file_id": null,
        "error_file_id": null,
        "created_at": created,
        "in_progress_at": null,
        "expires_at": created + 86_400,
        "finalizing_at": null,
        "completed_at": null,
        "failed_at": null,
        "expired_at": null,
        "cancelling_at": null,
        "cancelled_at": null,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": get("metadata", Value::Null),
    })
}

/// OpenAI's error type and code for a status.
pub(crate) fn error_body(status: u16, upstream: &str) -> Value {
    let (kind, code) = match status {
        400 => ("invalid_request_error", Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        403 => (
            "invalid_request_error",
            json!("unsupported_country_region_territory"),
        ),
        404 => ("invalid_request_error", json!("not_found")),
        409 => ("invalid_request_error", Value::Null),
        422 => ("invalid_request_error", Value::Null),
        429 => ("requests", json!("rate_limit_exceeded")),
        500..=599 => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    json!({"error": {
        "message": format!("mock-openai ({upstream}): forced status {status}"),
        "type": kind,
        "param": null,
        "code": code,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn responses_stream_numbers_events() {
        let ev = responses_stream("resp_1", "msg_1", 1, "m", &words("x"), None);
        let first = String::from_utf8_lossy(&ev[0]).into_owned();
        assert!(first.starts_with("event: response.created\ndata: {"));
        assert!(first.contains("\"sequence_number\":0"));
        let last = String::from_utf8_lossy(&ev[ev.len() - 1]).into_owned();
        assert!(last.starts_with("event: response.completed\n"));
        assert!(last.contains("\"status\":\"completed\""));
    }
}
