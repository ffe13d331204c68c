//! Follows the HTTP/1 framing of the bytes hyper reads, to refuse a request head that carries
//! both `Content-Length` and `Transfer-Encoding`.
//!
//! hyper resolves that shape itself while parsing (it drops the Content-Length and reads by
//! chunked), so the handler never sees it. A front proxy and an upstream that resolve it
//! differently is the request-smuggling shape, so we refuse it before hyper parses it: the
//! [`Tracker`] watches the byte stream, parses only the request heads, and skips bodies by
//! counting. Anything it does not understand switches it off for the rest of the connection:
//! hyper then answers (or rejects) exactly as it would without us.

mod guard;
#[cfg(test)]
mod tests;

pub use guard::{refusal_bytes, FramingGuard};

use std::mem::MaybeUninit;

/// Same bound as hyper's read buffer: a longer head is hyper's to refuse (431).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// hyper's default header count; more is hyper's to refuse.
const MAX_HEADERS: usize = 100;
/// A chunk-size line (size and extensions) longer than this is hyper's to refuse.
const MAX_CHUNK_LINE: usize = 4096;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Accumulating a request head until its blank line.
    Head,
    /// Skipping this many Content-Length body bytes.
    Fixed(u64),
    /// Reading a chunk-size line; the bytes so far are in `line`.
    ChunkSize,
    /// Skipping this many chunk data bytes.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data; how many of its bytes were seen.
    ChunkEnd(u8),
    /// Reading trailer lines until an empty one; `line` counts the current line's bytes.
    Trailers,
    /// Not following (h2, upgrade, CONNECT, or bytes hyper will judge itself): pass all.
    Off,
}

/// What [`Tracker::feed`] decided about the bytes given to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every byte may reach hyper, except the last [`Tracker::held`] bytes (a head not yet complete).
    Pass,
    /// A head carries both lengths: only the first `keep` bytes of this feed may reach hyper
    /// (earlier requests); the rest, and any head bytes held from earlier feeds, must not.
    Refuse { keep: usize },
}

/// The framing state machine of one connection's request bytes.
#[derive(Debug)]
pub struct Tracker {
    state: State,
    head: Vec<u8>,
    line: usize,
    line_bytes: Vec<u8>,
    trailer_bytes: usize,
    last_cr: bool,
    requests: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker {
            state: State::Head,
            head: Vec::new(),
            line: 0,
            line_bytes: Vec::new(),
            trailer_bytes: 0,
            last_cr: false,
            requests: 0,
        }
    }

    /// Whether the tracker has stopped following (everything passes from now on).
    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// How many request heads were complete and passed.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Whether the bytes so far end exactly at a request boundary: no head begun, no body
    /// left (bare line ends that hyper skips may have been seen).
    pub fn at_boundary(&self) -> bool {
        self.state == State::Head && self.head.is_empty()
    }

    /// Gives back the memory of the buffers kept between heads and chunk lines (a parked
    /// connection holds none); changes no state.
    pub fn release(&mut self) {
        if self.head.is_empty() {
            self.head = Vec::new();
        }
        if self.line_bytes.is_empty() {
            self.line_bytes = Vec::new();
        }
    }

    /// The bytes at the end of what was fed that belong to a head not yet complete: they are
    /// held back so hyper never buffers part of a head we might refuse, which would make it
    /// fail the connection instead of finishing the earlier requests. The first head is not
    /// held: nothing is in flight before it (its refusal is written at once), and hyper's
    /// protocol detection and header timeout must see its bytes as they come.
    pub fn held(&self) -> usize {
        if self.state == State::Head && self.requests > 0 {
            self.head.len()
        } else {
            0
        }
    }

    /// Consumes the next bytes of the connection.
    pub fn feed(&mut self, data: &[u8]) -> Step {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            match self.state {
                State::Off => return Step::Pass,
                State::Head => {
                    match self.head_bytes(rest) {
                        HeadStep::More => return Step::Pass,
                        HeadStep::Done(used) => i += used,
                        // A fresh head starts at i (i is 0 when it began in an earlier feed).
                        HeadStep::Refuse => return Step::Refuse { keep: i },
                    }
                }
                State::Fixed(n) => {
                    let skip = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                    i += skip;
                    let left = n - skip as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Fixed(left)
                    };
                }
                State::ChunkData(n) => {
                    let skip = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                    i += skip;
                    let left = n - skip as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd(0)
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    i += 1;
                    self.state = match (rest[0] == want, seen) {
                        (false, _) => State::Off,
                        (true, 0) => State::ChunkEnd(1),
                        (true, _) => State::ChunkSize,
                    };
                }
                State::ChunkSize => {
                    let (used, line_done) = match memchr::memchr(b'\n', rest) {
                        Some(p) => (p + 1, true),
                        None => (rest.len(), false),
                    };
                    self.line_bytes.extend_from_slice(&rest[..used]);
                    i += used;
                    if self.line_bytes.len() > MAX_CHUNK_LINE {
                        self.state = State::Off;
                    } else if line_done {
                        self.state = match chunk_size(&self.line_bytes) {
                            Some(0) => {
                                self.last_cr = false;
                                State::Trailers
                            }
                            Some(n) => State::ChunkData(n),
                            None => State::Off,
                        };
                        self.line_bytes.clear();
                        self.line = 0;
                        self.trailer_bytes = 0;
                    }
                }
                State::Trailers => {
                    // Trailers are rare and short: byte by byte. hyper wants CRLF line ends;
                    // anything else is its to reject.
                    let b = rest[0];
                    i += 1;
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_HEAD_BYTES {
                        self.state = State::Off;
                    } else if b == b'\n' {
                        if !self.last_cr {
                            self.state = State::Off;
                        } else if self.line == 1 {
                            self.state = State::Head;
                        }
                        self.line = 0;
                    } else {
                        self.line += 1;
                    }
                    self.last_cr = b == b'\r';
                }
            }
        }
        Step::Pass
    }
}

enum HeadStep {
    /// Every byte was taken into a head not yet complete.
    More,
    /// The head is complete (or the tracker switched off) after this many bytes.
    Done(usize),
    /// The head carries both Content-Length and Transfer-Encoding.
    Refuse,
}

/// What a complete head says about the body after it.
enum Framing {
    Body(State),
    Refuse,
}

impl Tracker {
    /// Takes head bytes until a head is complete. Only a head cut across feeds is copied into
    /// `self.head`; a head that lies whole in `data` is parsed where it is.
    fn head_bytes(&mut self, data: &[u8]) -> HeadStep {
        let mut start = 0;
        if self.head.is_empty() {
            // hyper skips empty lines before a request line; so do we, keeping them out of the head.
            match data.iter().position(|&b| b != b'\r' && b != b'\n') {
                Some(p) => start = p,
                None => return HeadStep::More,
            }
        }
        let new = &data[start..];
        let held = self.head.len();
        // The byte that takes the head past MAX_HEAD_BYTES switches the tracker off, even if it
        // would have ended the head; `held` never exceeds the cap (a longer head is off).
        let room = MAX_HEAD_BYTES.saturating_sub(held);
        let window = &new[..new.len().min(room)];
        if held == 0 && !(self.requests == 0 && window.starts_with(H2_PREFACE)) {
            // One parse of all there is instead of a search for the empty line and a parse up
            // to it, with the same verdict: a request or header line holds no LF but its last
            // byte, so httparse completes exactly at the first empty line, and runs out of bytes
            // only when there is none. An error may come before the empty line has arrived, and
            // a head is judged only once complete: then the search decides.
            match parse(window) {
                Parsed::Complete(n, framing) => return self.head_done(framing, &window[..n], start + n),
                Parsed::Partial => return self.head_open(new, 0, room, start),
                Parsed::Invalid => {}
            }
        }
        let mut copied = 0;
        for p in memchr::memchr_iter(b'\n', window) {
            // A head can only end on an empty line: parse only then, so a slow head costs one parse.
            if !ends_empty_line(&self.head[..held], new, p) {
                continue;
            }
            let framing = if held == 0 {
                judge(&new[..=p], self.requests)
            } else {
                self.head.extend_from_slice(&new[copied..=p]);
                copied = p + 1;
                judge(&self.head, self.requests)
            };
            if let Some(framing) = framing {
                return self.head_done(framing, &new[copied..=p], start + p + 1);
            }
        }
        self.head_open(new, copied, room, start)
    }

    /// No head ends in the first `room` bytes of `new`, of which the first `copied` are already
    /// in `self.head`; `new` begins `start` bytes into the feed.
    fn head_open(&mut self, new: &[u8], copied: usize, room: usize, start: usize) -> HeadStep {
        if new.len() > room {
            self.state = State::Off;
            self.head.clear();
            return HeadStep::Done(start + room + 1);
        }
        self.head.extend_from_slice(&new[copied..]);
        HeadStep::More
    }

    /// Acts on a complete head, which ends `used` bytes into the feed; `rest` is the part of it
    /// not yet in `self.head`.
    fn head_done(&mut self, framing: Framing, rest: &[u8], used: usize) -> HeadStep {
        match framing {
            Framing::Refuse => {
                // The refused head stays in `self.head`, as it would had it come byte by byte.
                self.head.extend_from_slice(rest);
                HeadStep::Refuse
            }
            Framing::Body(next) => {
                if next != State::Off {
                    self.requests += 1;
                }
                self.state = next;
                self.head.clear();
                HeadStep::Done(used)
            }
        }
    }
}

/// Whether the `\n` at `new[p]` ends an empty line (`\n\n` or `\n\r\n`) of the head `held ++ new`.
fn ends_empty_line(held: &[u8], new: &[u8], p: usize) -> bool {
    // The byte `back` places before `new[p]`, looking into `held` when `new` is too short.
    let before = |back: usize| match p.checked_sub(back) {
        Some(i) => new.get(i).copied(),
        None => (held.len() + p)
            .checked_sub(back)
            .and_then(|i| held.get(i).copied()),
    };
    match before(1) {
        Some(b'\n') => true,
        Some(b'\r') => before(2) == Some(b'\n'),
        _ => false,
    }
}

/// Judges a head that ends in an empty line; None when httparse still wants more (then keep
/// reading). `requests` is how many heads came before it on this connection.
fn judge(head: &[u8], requests: u64) -> Option<Framing> {
    // The connection preface of h2c prior knowledge: hyper serves it as HTTP/2.
    if requests == 0 && head.starts_with(H2_PREFACE) {
        return Some(Framing::Body(State::Off));
    }
    match parse(head) {
        Parsed::Complete(_, framing) => Some(framing),
        Parsed::Partial => None,
        Parsed::Invalid => Some(Framing::Body(State::Off)),
    }
}

/// What httparse makes of the start of some bytes.
enum Parsed {
    /// A head of this many bytes.
    Complete(usize, Framing),
    Partial,
    Invalid,
}

fn parse(buf: &[u8]) -> Parsed {
    // Uninitialised: httparse writes only the headers it finds, and a typical head has a few
    // of the hundred.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => Parsed::Complete(n, framing(&req)),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Invalid,
    }
}

/// What a parsed head says about the body after it.
fn framing(req: &httparse::Request<'_, '_>) -> Framing {
    if req.method.is_none_or(|m| m.eq_ignore_ascii_case("CONNECT")) {
        return Framing::Body(State::Off);
    }
    let mut length: Option<u64> = None;
    let mut any_cl = false;
    let mut bad_cl = false;
    let mut te: Option<&[u8]> = None;
    let mut upgrade = false;
    for h in req.headers.iter() {
        if is_named(h, b"content-length") {
            any_cl = true;
            match parse_decimal(h.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => bad_cl = true,
            }
        } else if is_named(h, b"transfer-encoding") {
            te = Some(h.value);
        } else if is_named(h, b"upgrade") {
            upgrade = true;
        }
    }
    // Checked before anything that switches the tracker off: this is the one refusal.
    if any_cl && te.is_some() {
        return Framing::Refuse;
    }
    // After a switch the bytes are not HTTP/1; malformed lengths are hyper's to reject.
    if upgrade || bad_cl {
        return Framing::Body(State::Off);
    }
    Framing::Body(match (te, length) {
        (Some(v), _) if req.version == Some(1) && ends_in_chunked(v) => State::ChunkSize,
        // Another coding, or chunked in HTTP/1.0: hyper rejects it.
        (Some(_), _) => State::Off,
        (None, Some(0)) | (None, None) => State::Head,
        (None, Some(n)) => State::Fixed(n),
    })
}

/// Whether the header is `lower` (lowercase ASCII), in any case.
fn is_named(h: &httparse::Header<'_>, lower: &[u8]) -> bool {
    let name = h.name.as_bytes();
    // Setting the case bit only where `lower` has a letter matches exactly what
    // `eq_ignore_ascii_case` does, and without its early exit the compiler compares the
    // (constant-length) names many bytes at once.
    name.len() == lower.len()
        && name.iter().zip(lower).fold(0, |diff, (&a, &b)| {
            let case = if b.is_ascii_lowercase() { 0x20 } else { 0 };
            diff | ((a | case) ^ b)
        }) == 0
}

/// Digits between optional spaces and tabs, as a u64 (None when they overflow it).
fn parse_decimal(v: &[u8]) -> Option<u64> {
    let first = v.iter().position(|&b| b != b' ' && b != b'\t')?;
    let last = v.iter().rposition(|&b| b != b' ' && b != b'\t')?;
    v[first..=last].iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Whether the last coding is `chunked` (only then is the body chunked; hyper rejects the rest).
fn ends_in_chunked(v: &[u8]) -> bool {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|last| last.trim_matches([' ', '\t']).eq_ignore_ascii_case("chunked"))
}

/// The size of a `hex[;ext]CRLF` chunk-size line, None when hyper would reject it.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let end = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let (hex, rest) = line.split_at(end);
    if hex.is_empty() || hex.len() > 16 || rest.contains(&b'\r') {
        return None;
    }
    let hex = std::str::from_utf8(hex).ok()?;
    u64::from_str_radix(hex, 16).ok()
}
