//! Decoding of `Transfer-Encoding: chunked` response bodies (RFC 9112 §7.1), for our own
//! upstream HTTP/1.1 client.
//!
//! The decoder does no I/O: the caller reads socket bytes into a [`BytesMut`] and calls
//! [`ChunkedDecoder::decode`] until it returns [`Decoded::NeedMore`], then reads more. Chunk
//! data is split off the front of the buffer without copying. Everything else (size lines,
//! CRLFs, the trailer section) is consumed as it arrives: a size line is parsed byte by byte
//! into a few integers, a partial trailer line is kept inside the decoder, so the decoder holds
//! at most [`MAX_TRAILER_SECTION`] bytes, and the result does not depend on how the input was
//! cut between calls (every check is a function of the bytes consumed so far).
//!
//! Leniency, as RFC 9112 §2.2 allows a recipient: a bare LF ends a line wherever CRLF is
//! expected (a CR not followed by LF is an error), and spaces/tabs may follow the size with or
//! without an extension. Chunk extensions are skipped without being interpreted; only control
//! characters other than HTAB are refused in them. Bytes after the end of the body (the next
//! response on the connection) are left in the buffer.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;

/// Longest chunk-size line, size + extensions + line terminator.
pub const MAX_SIZE_LINE: usize = 4096;
/// Longest trailer section: every byte after the last-chunk line up to and including the final
/// CRLF.
pub const MAX_TRAILER_SECTION: usize = 64 * 1024;
/// Most trailer fields.
pub const MAX_TRAILER_FIELDS: usize = 100;

/// What one call to [`ChunkedDecoder::decode`] found at the front of the buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// Chunk data, split off the front of the buffer without copying (`split_to(..).freeze()`);
    /// never empty. May be a part of a chunk (whatever of it is buffered).
    Data(Bytes),
    /// The body ended (last chunk and the trailer section, including its final CRLF, consumed).
    /// `trailers` holds the trailer fields, empty when there were none.
    End { trailers: HeaderMap },
    /// More bytes are needed; everything usable was consumed from the buffer (a partial trailer
    /// line is kept inside the decoder).
    NeedMore,
}

/// Why a chunked body is malformed (a short reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedError(pub &'static str);

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for ChunkedError {}

/// Where in a chunk-size line the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizePhase {
    /// Nothing read yet: a hex digit must come.
    Start,
    /// In the hex digits.
    Digits,
    /// In whitespace after the digits: `;`, more whitespace or the line end may come.
    Space,
    /// In a chunk extension, up to the line end.
    Ext,
    /// After a CR: only LF may come.
    Cr,
}

#[derive(Debug)]
enum State {
    /// Reading a chunk-size line.
    Size {
        phase: SizePhase,
        size: u64,
        /// Bytes of the line consumed so far.
        len: usize,
    },
    /// Inside chunk data, this many bytes to go (never 0).
    Data { remaining: u64 },
    /// After chunk data: CR or LF must come.
    DataEnd,
    /// After chunk data and a CR: LF must come.
    DataEndLf,
    /// Reading the trailer section.
    Trailers,
    /// `End` was returned.
    Done,
    /// An error was returned; it is returned again.
    Failed(ChunkedError),
}

const START_SIZE: State = State::Size {
    phase: SizePhase::Start,
    size: 0,
    len: 0,
};

/// An incremental decoder of one chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The trailer line read so far (without its LF), at most [`MAX_TRAILER_SECTION`] bytes.
    line: Vec<u8>,
    /// Bytes of the trailer section consumed so far.
    trailer_len: usize,
    /// Trailer fields read so far.
    trailer_count: usize,
    trailers: HeaderMap,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: START_SIZE,
            line: Vec::new(),
            trailer_len: 0,
            trailer_count: 0,
            trailers: HeaderMap::new(),
        }
    }

    /// Whether `End` was returned.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Decodes from the front of `buf`: returns the next piece of chunk data, the end of the
    /// body, or `NeedMore` once `buf` is used up. After `End`, returns
    /// `ChunkedError("decoder already finished")`; after an error, that error again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        let result = self.step(buf);
        if let Err(e) = &result {
            if !matches!(self.state, State::Done | State::Failed(_)) {
                self.state = State::Failed(e.clone());
                self.line = Vec::new();
                self.trailers = HeaderMap::new();
            }
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        loop {
            match &mut self.state {
                State::Size { phase, size, len } => {
                    let Some(done) = size_line(phase, size, len, buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.state = if done == 0 {
                        State::Trailers
                    } else {
                        State::Data { remaining: done }
                    };
                }
                State::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(buf.len());
                    // n <= remaining, as it came from it: no underflow.
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::DataEnd;
                    }
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                State::DataEnd | State::DataEndLf => {
                    let Some(&b) = buf.first() else {
                        return Ok(Decoded::NeedMore);
                    };
                    let after_cr = matches!(self.state, State::DataEndLf);
                    self.state = match b {
                        b'\n' => START_SIZE,
                        b'\r' if !after_cr => State::DataEndLf,
                        _ => return Err(ChunkedError("invalid chunk data terminator")),
                    };
                    buf.advance(1);
                }
                State::Trailers => return self.trailer_section(buf),
                State::Done => return Err(ChunkedError("decoder already finished")),
                State::Failed(e) => return Err(e.clone()),
            }
        }
    }

    /// Reads trailer lines until the empty line that ends the section, or `buf` is used up.
    fn trailer_section(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        loop {
            let budget = MAX_TRAILER_SECTION.saturating_sub(self.trailer_len);
            // A line end beyond the budget is too far anyway: look no further.
            let window = buf.get(..buf.len().min(budget.saturating_add(1)));
            let window = window.unwrap_or_default();
            let Some(lf) = memchr::memchr(b'\n', window) else {
                if buf.len() > budget {
                    return Err(ChunkedError("trailer section too long"));
                }
                self.line.extend_from_slice(buf);
                self.trailer_len += buf.len();
                buf.clear();
                return Ok(Decoded::NeedMore);
            };
            let take = lf + 1;
            if take > budget {
                return Err(ChunkedError("trailer section too long"));
            }
            self.line.extend_from_slice(window.get(..lf).unwrap_or_default());
            self.trailer_len += take;
            buf.advance(take);
            let mut line = self.line.as_slice();
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            if line.contains(&b'\r') {
                return Err(ChunkedError("CR not followed by LF in trailer section"));
            }
            if line.is_empty() {
                self.state = State::Done;
                self.line = Vec::new();
                let trailers = std::mem::take(&mut self.trailers);
                return Ok(Decoded::End { trailers });
            }
            self.trailer_count += 1;
            if self.trailer_count > MAX_TRAILER_FIELDS {
                return Err(ChunkedError("too many trailer fields"));
            }
            let (name, value) = field_line(line)?;
            self.trailers.append(name, value);
            self.line.clear();
        }
    }
}

/// Reads a chunk-size line from the front of `buf`: the size once the line is complete, `None`
/// when `buf` ran out first (the bytes are consumed and the progress kept in the arguments).
fn size_line(
    phase: &mut SizePhase,
    size: &mut u64,
    len: &mut usize,
    buf: &mut BytesMut,
) -> Result<Option<u64>, ChunkedError> {
    let mut used = 0;
    let mut done = false;
    for &b in buf.iter() {
        used += 1;
        if *len + used > MAX_SIZE_LINE {
            return Err(ChunkedError("chunk size line too long"));
        }
        *phase = match (*phase, b) {
            (SizePhase::Cr, b'\n') => {
                done = true;
                break;
            }
            (SizePhase::Cr, _) => return Err(ChunkedError("CR not followed by LF in chunk size line")),
            (SizePhase::Start | SizePhase::Digits, _) if b.is_ascii_hexdigit() => {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    _ => (b | 0x20) - b'a' + 10,
                };
                *size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(digit)))
                    .ok_or(ChunkedError("chunk size overflows u64"))?;
                SizePhase::Digits
            }
            (SizePhase::Start, b'\r' | b'\n' | b';') => {
                return Err(ChunkedError("empty chunk size"));
            }
            (SizePhase::Start, _) => return Err(ChunkedError("invalid chunk size")),
            (_, b'\n') => {
                done = true;
                break;
            }
            (_, b'\r') => SizePhase::Cr,
            (SizePhase::Ext, b) if b == b'\t' || !(b.is_ascii_control()) => SizePhase::Ext,
            (SizePhase::Ext, _) => return Err(ChunkedError("control character in chunk extension")),
            (SizePhase::Digits | SizePhase::Space, b' ' | b'\t') => SizePhase::Space,
            (SizePhase::Digits | SizePhase::Space, b';') => SizePhase::Ext,
            (SizePhase::Digits, _) => return Err(ChunkedError("invalid chunk size")),
            (SizePhase::Space, _) => return Err(ChunkedError("invalid character after chunk size")),
        };
    }
    *len += used;
    buf.advance(used);
    Ok(done.then_some(*size))
}

/// Parses one trailer field line (without its line end).
fn field_line(line: &[u8]) -> Result<(HeaderName, HeaderValue), ChunkedError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(ChunkedError("obsolete line folding in trailer section"));
    }
    let colon = memchr::memchr(b':', line).ok_or(ChunkedError("trailer field line without colon"))?;
    let (name, value) = (
        line.get(..colon).unwrap_or_default(),
        line.get(colon + 1..).unwrap_or_default(),
    );
    let name = HeaderName::from_bytes(name).map_err(|_| ChunkedError("invalid trailer field name"))?;
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    let value = value.get(start..end).unwrap_or_default();
    let value = HeaderValue::from_bytes(value).map_err(|_| ChunkedError("invalid trailer field value"))?;
    Ok((name, value))
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
