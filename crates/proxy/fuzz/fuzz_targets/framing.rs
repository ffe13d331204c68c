//! The HTTP/1 framing tracker (`proxy::framing::Tracker`) on arbitrary connection bytes cut at
//! arbitrary points: the client controls how its bytes arrive, so whether a head is refused,
//! how many requests were followed, and whether tracking stopped must not depend on the cuts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::framing::{Step, Tracker};

/// (refused, requests, off) after feeding `data` in pieces ending at `ends`.
fn run(data: &[u8], ends: &[usize]) -> (bool, u64, bool) {
    let mut t = Tracker::new();
    let mut start = 0;
    for &end in ends.iter().chain(std::iter::once(&data.len())) {
        if end < start || end > data.len() {
            continue;
        }
        if let Step::Refuse { .. } = t.feed(&data[start..end]) {
            return (true, t.requests(), t.is_off());
        }
        start = end;
    }
    (false, t.requests(), t.is_off())
}

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else { return };
    let (cut_bytes, data) = rest.split_at((n as usize % 16).min(rest.len()));
    let mut ends: Vec<usize> = cut_bytes
        .iter()
        .map(|c| *c as usize * 7 % (data.len() + 1))
        .collect();
    ends.sort_unstable();
    let whole = run(data, &[]);
    let cut = run(data, &ends);
    let bytes: Vec<usize> = (1..data.len()).collect();
    let byte_by_byte = run(data, &bytes);
    assert_eq!(whole, cut, "cuts {ends:?}");
    assert_eq!(whole, byte_by_byte, "byte by byte");
});
