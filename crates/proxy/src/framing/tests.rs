use super::*;

const CHAT: &str = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n";

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[test]
fn content_length_and_chunked_in_either_order_are_refused() {
    for raw in [
        format!("{CHAT}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        format!("{CHAT}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"),
        format!("{CHAT}transfer-encoding: gzip\r\nCONTENT-LENGTH: 5\r\ncontent-length: 5\r\n\r\nhello"),
        format!("{CHAT}Transfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n"),
    ] {
        let mut t = Tracker::new();
        assert_eq!(t.feed(raw.as_bytes()), Step::Refuse { keep: 0 }, "{raw}");
    }
}

#[test]
fn a_refused_head_after_good_requests_keeps_only_those() {
    let good = format!("{CHAT}Content-Length: 5\r\n\r\nhello");
    let bad = format!("{CHAT}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    let mut t = Tracker::new();
    let raw = format!("{good}{bad}");
    assert_eq!(t.feed(raw.as_bytes()), Step::Refuse { keep: good.len() });
    assert_eq!(t.requests(), 1);
}

#[test]
fn pipelined_requests_after_chunked_and_fixed_bodies_pass() {
    let raw = format!(
        "{CHAT}Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n3 ; x\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n\
{CHAT}Content-Length: 11\r\n\r\nhello world{}\r\n{CHAT}Content-Length: 0\r\n\r\n{}",
        get("/a"),
        get("/b")
    );
    let mut t = Tracker::new();
    assert_eq!(t.feed(raw.as_bytes()), Step::Pass);
    assert_eq!(t.requests(), 5);
    assert_eq!(t.held(), 0);
    assert!(!t.is_off());
    // The body bytes were skipped, not parsed: a head-like body does not count as a request.
    let mut t = Tracker::new();
    let body = get("/hidden");
    let raw = format!("{CHAT}Content-Length: {}\r\n\r\n{body}", body.len());
    assert_eq!(t.feed(raw.as_bytes()), Step::Pass);
    assert_eq!(t.requests(), 1);
}

#[test]
fn byte_by_byte_feeding_matches_one_feed() {
    let good = format!(
        "{CHAT}Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\nT: v\r\n\r\n{}",
        get("/x")
    );
    let bad = format!("{CHAT}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello");
    let raw = format!("{good}{bad}");
    let mut t = Tracker::new();
    let mut refused_at = None;
    for (i, b) in raw.as_bytes().iter().enumerate() {
        if let Step::Refuse { keep } = t.feed(std::slice::from_ref(b)) {
            assert_eq!(keep, 0);
            refused_at = Some(i);
            break;
        }
    }
    assert_eq!(t.requests(), 2);
    // Refused on the head's last byte, with the whole head held back until then.
    assert_eq!(
        refused_at,
        Some(good.len() + bad.find("\r\n\r\n").unwrap_or(0) + 3)
    );
}

#[test]
fn a_partial_head_is_held_back() {
    // Not the first: hyper's protocol detection and header timeout must see its bytes.
    let mut t = Tracker::new();
    assert_eq!(t.feed(b"POST /v1/chat"), Step::Pass);
    assert_eq!(t.held(), 0);
    let mut t = Tracker::new();
    let body = format!("{CHAT}Content-Length: 2\r\n\r\nok");
    let next = "GET /next HTTP/1.1\r\nHo";
    assert_eq!(t.feed(format!("\r\n{body}{next}").as_bytes()), Step::Pass);
    assert_eq!(t.held(), next.len());
    assert_eq!(t.feed(b"st: x\r\n\r\n"), Step::Pass);
    assert_eq!(t.held(), 0);
    assert_eq!(t.requests(), 2);
}

#[test]
fn what_the_tracker_does_not_follow_passes_unchanged() {
    let cases = [
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec(),
        b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n".to_vec(),
        format!("{CHAT}Transfer-Encoding: gzip\r\n\r\n").into_bytes(),
        format!("{CHAT}Transfer-Encoding: chunked\r\n\r\nzz\r\n").into_bytes(),
        format!("{CHAT}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n").into_bytes(),
    ];
    for raw in cases {
        let mut t = Tracker::new();
        assert_eq!(t.feed(&raw), Step::Pass, "{}", String::from_utf8_lossy(&raw));
        assert!(t.is_off(), "{}", String::from_utf8_lossy(&raw));
        assert_eq!(t.held(), 0);
        // Once off, even a refused shape passes: hyper judges the rest of the connection.
        let bad = format!("{CHAT}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(t.feed(bad.as_bytes()), Step::Pass);
    }
}

#[test]
fn an_oversized_head_is_left_to_hyper() {
    let mut t = Tracker::new();
    let big = format!("{CHAT}X-Big: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
    assert_eq!(t.feed(big.as_bytes()), Step::Pass);
    assert!(t.is_off());
    assert_eq!(t.held(), 0);
}

#[test]
fn the_refusal_is_a_complete_json_400() {
    let raw = guard::refusal_bytes();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    for h in [
        "content-type: application/json\r\n",
        "connection: close\r\n",
        "x-residency-decision: deny\r\n",
    ] {
        assert!(text.contains(h), "{h} in {text}");
    }
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
    assert!(
        head.contains(&format!("content-length: {}\r\n", body.len())),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    assert_eq!(v["error"]["code"], "invalid_request");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["param"].is_null());
}

/// Valid requests, pipelined and cut anywhere, always pass and are all counted: the tracker
/// never refuses or loses a keep-alive connection that hyper would serve.
mod pipelined {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Req {
        Get,
        Fixed(Vec<u8>),
        Chunked(Vec<Vec<u8>>, bool),
    }

    /// Body bytes rich in what a head parser would trip on.
    fn body_byte() -> impl Strategy<Value = u8> {
        prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b':'), Just(b'0')]
    }

    fn req() -> impl Strategy<Value = Req> {
        prop_oneof![
            Just(Req::Get),
            vec(body_byte(), 0..64).prop_map(Req::Fixed),
            (vec(vec(body_byte(), 1..40), 0..4), any::<bool>()).prop_map(|(c, t)| Req::Chunked(c, t)),
        ]
    }

    fn render(r: &Req) -> Vec<u8> {
        match r {
            Req::Get => get("/v1/models").into_bytes(),
            Req::Fixed(body) => {
                let mut out = format!("{CHAT}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
                out.extend_from_slice(body);
                out
            }
            Req::Chunked(chunks, trailer) => {
                let mut out = format!("{CHAT}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
                for c in chunks {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                if *trailer {
                    out.extend_from_slice(b"X-Checksum: 1\r\n");
                }
                out.extend_from_slice(b"\r\n");
                out
            }
        }
    }

    proptest! {
        #[test]
        fn valid_pipelined_requests_always_pass(reqs in vec(req(), 1..6), cuts in vec(1usize..50, 1..20)) {
            let raw: Vec<u8> = reqs.iter().flat_map(render).collect();
            let mut t = Tracker::new();
            let (mut pos, mut i) = (0, 0);
            while pos < raw.len() {
                let n = cuts[i % cuts.len()].min(raw.len() - pos);
                prop_assert_eq!(t.feed(&raw[pos..pos + n]), Step::Pass);
                pos += n;
                i += 1;
            }
            prop_assert!(!t.is_off());
            prop_assert_eq!(t.requests(), reqs.len() as u64);
            prop_assert_eq!(t.held(), 0);
        }
    }
}

/// The state after feeding `raw` in pieces ending at `ends` (then the rest): whether a head was
/// refused, the requests followed, whether tracking stopped, and what is held.
fn fed(raw: &[u8], ends: &[usize]) -> (bool, u64, bool, usize) {
    let mut t = Tracker::new();
    let mut start = 0;
    for &end in ends.iter().chain(std::iter::once(&raw.len())) {
        if let Step::Refuse { .. } = t.feed(&raw[start..end]) {
            return (true, t.requests(), t.is_off(), t.held());
        }
        start = end;
    }
    (false, t.requests(), t.is_off(), t.held())
}

/// Every cut into two or three pieces gives what one feed gives.
fn cut_anywhere_as_whole(raw: &[u8]) -> (bool, u64, bool, usize) {
    let whole = fed(raw, &[]);
    for a in 0..=raw.len() {
        assert_eq!(
            fed(raw, &[a]),
            whole,
            "cut at {a}: {}",
            String::from_utf8_lossy(raw)
        );
        for b in a..=raw.len() {
            assert_eq!(
                fed(raw, &[a, b]),
                whole,
                "cuts at {a}, {b}: {}",
                String::from_utf8_lossy(raw)
            );
        }
    }
    whole
}

#[test]
fn an_empty_line_cut_across_feeds_still_ends_the_head() {
    let first = format!("{CHAT}Content-Length: 2\r\n\r\nok");
    for end in ["\r\n\r\n", "\n\n", "\r\n\n", "\n\r\n"] {
        // The second head is held until its empty line, wherever that is cut.
        let raw = format!("{first}GET / HTTP/1.1\r\nHost: x{end}");
        assert_eq!(
            cut_anywhere_as_whole(raw.as_bytes()),
            (false, 2, false, 0),
            "{end:?}"
        );
    }
    // The cuts named: CR | LF CR LF, and LF CR | LF.
    let mut t = Tracker::new();
    assert_eq!(
        t.feed(format!("{first}GET / HTTP/1.1\r\nHost: x\r").as_bytes()),
        Step::Pass
    );
    assert_eq!(t.held(), "GET / HTTP/1.1\r\nHost: x\r".len());
    assert_eq!(t.feed(b"\n\r\n"), Step::Pass);
    assert_eq!((t.held(), t.requests()), (0, 2));
    let mut t = Tracker::new();
    assert_eq!(
        t.feed(format!("{first}GET / HTTP/1.1\r\nHost: x\n\r").as_bytes()),
        Step::Pass
    );
    assert_eq!(t.held(), "GET / HTTP/1.1\r\nHost: x\n\r".len());
    assert_eq!(t.feed(b"\n"), Step::Pass);
    assert_eq!((t.held(), t.requests()), (0, 2));
    // A refused head cut at its empty line is refused when that line completes.
    let mut t = Tracker::new();
    let bad = format!("{CHAT}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r");
    assert_eq!(t.feed(format!("{first}{bad}").as_bytes()), Step::Pass);
    assert_eq!(t.held(), bad.len());
    assert_eq!(t.feed(b"\nhello"), Step::Refuse { keep: 0 });
}

#[test]
fn empty_lines_before_a_head_are_skipped_and_never_held() {
    let first = format!("{CHAT}Content-Length: 2\r\n\r\nok");
    let raw = format!("\r\n\n{first}\r\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(cut_anywhere_as_whole(raw.as_bytes()), (false, 2, false, 0));
    let mut t = Tracker::new();
    assert_eq!(t.feed(format!("{first}\r").as_bytes()), Step::Pass);
    assert_eq!(t.held(), 0);
    assert_eq!(t.feed(b"\n\r"), Step::Pass);
    assert_eq!(t.held(), 0);
    assert_eq!(t.feed(b"\nGET"), Step::Pass);
    assert_eq!(t.held(), 3);
}

#[test]
fn a_head_is_followed_up_to_exactly_max_head_bytes() {
    let head = |len: usize| {
        let start = "GET / HTTP/1.1\r\nX-Big: ";
        format!("{start}{}\r\n\r\n", "a".repeat(len - start.len() - 4))
    };
    let first = format!("{CHAT}Content-Length: 2\r\n\r\nok");
    for (len, off) in [(MAX_HEAD_BYTES, false), (MAX_HEAD_BYTES + 1, true)] {
        let h = head(len);
        assert_eq!(h.len(), len);
        // Empty lines before it are not part of it.
        for raw in [
            h.clone(),
            format!("\r\n\r\n{h}"),
            format!("{first}{h}"),
            format!("{first}\r\n{h}"),
        ] {
            let whole = fed(raw.as_bytes(), &[]);
            assert_eq!((whole.2, whole.3), (off, 0), "{len}");
            for cut in [1, raw.len() / 2, raw.len() - 3, raw.len() - 2, raw.len() - 1] {
                assert_eq!(fed(raw.as_bytes(), &[cut]), whole, "{len}, cut at {cut}");
            }
        }
    }
    // A head not complete at the cap stops the tracker at the byte past it, in one feed or many.
    let raw = format!("{first}GET / HTTP/1.1\r\nX-Big: {}", "a".repeat(MAX_HEAD_BYTES));
    for ends in [vec![], vec![first.len() + 10], vec![first.len() + MAX_HEAD_BYTES]] {
        assert_eq!(fed(raw.as_bytes(), &ends), (false, 1, true, 0), "{ends:?}");
    }
    let mut t = Tracker::new();
    let at_cap = first.len() + MAX_HEAD_BYTES;
    assert_eq!(t.feed(&raw.as_bytes()[..at_cap]), Step::Pass);
    assert_eq!((t.is_off(), t.held()), (false, MAX_HEAD_BYTES));
    assert_eq!(t.feed(&raw.as_bytes()[at_cap..at_cap + 1]), Step::Pass);
    assert!(t.is_off());
}

#[test]
fn a_malformed_head_is_judged_only_once_complete() {
    // httparse rejects these before their empty line arrives; the tracker still waits for it,
    // holding them like any partial head.
    let first = format!("{CHAT}Content-Length: 2\r\n\r\nok");
    let many = "X: y\r\n".repeat(MAX_HEADERS + 1);
    for bad in [
        "GET / HTTP/1.1\r\nbad header\r\n",
        "GET / HTTP/3.0\r\n",
        "G\tET",
        many.as_str(),
    ] {
        let mut t = Tracker::new();
        assert_eq!(
            t.feed(format!("{first}GET / HTTP/1.1\r\nHost: x\r\n{bad}").as_bytes()),
            Step::Pass
        );
        assert!(!t.is_off(), "{bad}");
        assert_eq!(t.held(), "GET / HTTP/1.1\r\nHost: x\r\n".len() + bad.len());
        assert_eq!(t.feed(b"\r\n\r\n"), Step::Pass);
        assert!(t.is_off(), "{bad}");
    }
    for bad in [
        "GET / HTTP/1.1\r\nbad header\r\n\r\n",
        "GET / HTTP/3.0\r\n\r\n",
        "G\tET / HTTP/1.1\n\n",
    ] {
        let raw = format!("{first}{bad}GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            cut_anywhere_as_whole(raw.as_bytes()),
            (false, 1, true, 0),
            "{bad}"
        );
    }
}

/// Heads of every shape the tracker treats differently, cut anywhere, end in the same state as
/// when fed whole (the byte-level twin of the fuzz target, small enough to run with the tests).
mod cut_invariance {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "GET / HTTP/1.1",
        "POST /x HTTP/1.0",
        "CONNECT x:1 HTTP/1.1",
        "PRI * HTTP/2.0",
        "\r\n",
        "\n",
        "\r",
        "Host: x",
        "Content-Length: 3",
        "content-length:  03 ",
        "Content-Length: x",
        "Transfer-Encoding: chunked",
        "Upgrade: h2c",
        "bad header",
        ": y",
        "abc",
        "0",
        "3",
        " ",
        "\t",
    ];

    proptest! {
        #[test]
        fn the_end_state_does_not_depend_on_the_cuts(
            pieces in vec(0..PIECES.len(), 0..40),
            ends in vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let raw: Vec<u8> = pieces.iter().flat_map(|&p| PIECES[p].bytes()).collect();
            let mut ends: Vec<usize> = ends.iter().map(|i| i.index(raw.len() + 1)).collect();
            ends.sort_unstable();
            let whole = fed(&raw, &[]);
            prop_assert_eq!(fed(&raw, &ends), whole);
            let bytes: Vec<usize> = (1..raw.len()).collect();
            prop_assert_eq!(fed(&raw, &bytes), whole);
        }
    }
}

/// The cost of following a typical keep-alive request, head and body in one read. Counted with
/// `CARGO_TARGET_DIR=/work/target-helper cargo test --release -p proxy --lib typical_requests -- --ignored`,
/// then that test binary under `valgrind --tool=callgrind --toggle-collect='*Tracker*feed*'`.
#[test]
#[ignore = "a measurement harness"]
fn ten_thousand_typical_requests() {
    let mut raw = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
Content-Type: application/json\r\nAuthorization: Bearer sk-x\r\nContent-Length: 971\r\n\r\n"
        .to_vec();
    raw.extend(std::iter::repeat_n(b'x', 971));
    let mut t = Tracker::new();
    for _ in 0..10_000 {
        assert_eq!(
            std::hint::black_box(&mut t).feed(std::hint::black_box(&raw)),
            Step::Pass
        );
    }
    assert_eq!(t.requests(), 10_000);
}

#[test]
fn at_boundary_only_between_requests() {
    let mut t = Tracker::new();
    assert!(t.at_boundary(), "a fresh connection");
    assert_eq!(t.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Len"), Step::Pass);
    assert!(!t.at_boundary(), "inside a head");
    assert_eq!(t.feed(b"gth: 4\r\n\r\nab"), Step::Pass);
    assert!(!t.at_boundary(), "inside a body");
    assert_eq!(t.feed(b"cd"), Step::Pass);
    assert!(t.at_boundary() && t.requests() == 1);
    assert_eq!(
        t.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
        Step::Pass
    );
    assert!(!t.at_boundary(), "inside a chunked body");
    assert_eq!(t.feed(b"0\r\n\r\n"), Step::Pass);
    assert!(t.at_boundary() && t.requests() == 2);
    t.release();
    assert!(t.at_boundary() && t.requests() == 2, "release changes no state");
}
