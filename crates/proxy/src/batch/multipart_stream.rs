//! A push parser for multipart/form-data that never holds more than a chunk: for uploads
//! that stream through the proxy (files, batch inputs) while being watched.
//!
//! A part's headers are read by `inspect::parse_part_headers`, the reader
//! `inspect::scan_multipart` uses: a part it reports as `purpose` is the part the buffered
//! scan (and the upstream) reads as `purpose`.

use memchr::memmem;

/// What the parser found, in body order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Part { name: String, filename: Option<String> },
    Data(&'a [u8]),
    PartEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: `\r\n` (a part follows) or `--` (the end).
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

/// Largest header block accepted for one part.
const MAX_HEADERS: usize = 16 * 1024;

pub struct MultipartStream {
    /// `\r\n--boundary`: what ends a part's body.
    delimiter: Vec<u8>,
    state: State,
    /// Unprocessed bytes carried between pushes (a possible partial delimiter, or headers).
    carry: Vec<u8>,
}

impl MultipartStream {
    pub fn new(boundary: &str) -> MultipartStream {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first delimiter may start the body without the leading CRLF: pretend it was there.
        MultipartStream {
            delimiter,
            state: State::Preamble,
            carry: b"\r\n".to_vec(),
        }
    }

    /// Feeds the next chunk; `sink` receives the events it completes.
    pub fn push(&mut self, chunk: &[u8], sink: &mut impl FnMut(Event<'_>)) -> Result<(), String> {
        self.carry.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.carry);
        let used = self.process(&buf, sink)?;
        self.carry = buf;
        self.carry.drain(..used);
        Ok(())
    }

    /// How many of the bytes pushed so far are not yet decided (a possible delimiter or an
    /// unfinished header block): the events they hold come with a later chunk.
    pub fn undecided(&self) -> usize {
        self.carry.len()
    }

    /// The body ended: it must have ended with the closing delimiter.
    pub fn finish(&self) -> Result<(), String> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err("the multipart body ends before its closing boundary".into())
        }
    }

    /// Processes as much of `buf` as can be decided; returns how many bytes were used.
    fn process(&mut self, buf: &[u8], sink: &mut impl FnMut(Event<'_>)) -> Result<usize, String> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok(buf.len()),
                // The boundary text may appear in the preamble only as the first delimiter: a
                // lenient parser could start at another occurrence and see parts we skipped.
                State::Preamble => match memmem::find(&buf[pos..], &self.delimiter[2..]) {
                    Some(i) => {
                        let at = pos + i;
                        if at < 2 || &buf[at - 2..at] != b"\r\n" {
                            return Err("the multipart boundary appears in the preamble".into());
                        }
                        pos = at + self.delimiter.len() - 2;
                        self.state = State::AfterDelimiter;
                    }
                    None => return Ok(buf.len().saturating_sub(self.delimiter.len() - 1).max(pos)),
                },
                State::AfterDelimiter => {
                    let rest = &buf[pos..];
                    if rest.len() < 2 {
                        return Ok(pos);
                    }
                    if rest.starts_with(b"--") {
                        self.state = State::Done;
                        return Ok(buf.len());
                    }
                    // Transport padding (spaces, tabs) may precede the CRLF (RFC 2046).
                    let ws = rest.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
                    if rest.len() < ws + 2 {
                        return Ok(pos);
                    }
                    if &rest[ws..ws + 2] != b"\r\n" {
                        return Err("a multipart boundary is followed by garbage".into());
                    }
                    pos += ws + 2;
                    self.state = State::Headers;
                }
                State::Headers => {
                    // The header block with each line's CRLF; empty when the blank line comes
                    // at once (no headers, refused by the reader below).
                    let end = if buf[pos..].starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        memmem::find(&buf[pos..], b"\r\n\r\n").map(|i| i + 2)
                    };
                    match end {
                        Some(end) => {
                            let block = &buf[pos..pos + end];
                            if memmem::find(block, &self.delimiter[2..]).is_some() {
                                return Err("boundary inside part headers".into());
                            }
                            let h = inspect::parse_part_headers(block, 0).map_err(|e| e.to_string())?;
                            sink(Event::Part {
                                name: h.name.to_string(),
                                filename: h.filename.map(str::to_string),
                            });
                            pos += end + 2;
                            self.state = State::Body;
                        }
                        None if buf.len() - pos > MAX_HEADERS => {
                            return Err("multipart part headers are too large".into())
                        }
                        None => return Ok(pos),
                    }
                }
                State::Body => match memmem::find(&buf[pos..], &self.delimiter) {
                    Some(i) => {
                        if i > 0 {
                            sink(Event::Data(&buf[pos..pos + i]));
                        }
                        sink(Event::PartEnd);
                        pos += i + self.delimiter.len();
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        // Keep what could be the start of a delimiter split across chunks.
                        let safe = (buf.len() - pos).saturating_sub(self.delimiter.len() - 1);
                        if safe > 0 {
                            sink(Event::Data(&buf[pos..pos + safe]));
                        }
                        return Ok(pos + safe);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &[u8], boundary: &str, chunk: usize) -> Result<Vec<String>, String> {
        let mut p = MultipartStream::new(boundary);
        let mut out: Vec<String> = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            p.push(c, &mut |e| match e {
                Event::Part { name, filename } => out.push(format!("part {name} {filename:?}")),
                Event::Data(d) => {
                    if let Some(last) = out.last_mut().filter(|l| l.starts_with("data ")) {
                        last.push_str(&String::from_utf8_lossy(d));
                    } else {
                        out.push(format!("data {}", String::from_utf8_lossy(d)));
                    }
                }
                Event::PartEnd => out.push("end".into()),
            })?;
        }
        p.finish()?;
        Ok(out)
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{\"a\":1}\n{\"b\":2}\n\r\n--XyZ--\r\nepilogue";

    #[test]
    fn every_chunking_gives_the_same_events() {
        let whole = events(BODY, "XyZ", BODY.len()).unwrap();
        assert_eq!(
            whole,
            vec![
                "part purpose None",
                "data batch",
                "end",
                "part file Some(\"a.jsonl\")",
                "data {\"a\":1}\n{\"b\":2}\n",
                "end"
            ]
        );
        for n in 1..BODY.len() {
            assert_eq!(events(BODY, "XyZ", n).unwrap(), whole, "chunk size {n}");
        }
    }

    #[test]
    fn a_body_without_the_closing_boundary_is_refused() {
        let cut = &BODY[..BODY.len() - 20];
        assert!(events(cut, "XyZ", 7).is_err());
    }

    #[test]
    fn boundary_text_in_the_preamble_and_transfer_encodings_are_refused() {
        // Issue 6: a `purpose=batch` part hidden in the preamble after a bare LF, or a base64
        // `purpose` ("YmF0Y2g=" is "batch"), would make the upload a batch only upstream.
        let hidden = b"x\n--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n";
        let body = [&hidden[..], &BODY[b"preamble\r\n".len()..]].concat();
        let b64 = b"--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYmF0Y2g=\r\n--XyZ--\r\n";
        for n in 1..body.len() {
            assert!(events(&body, "XyZ", n).is_err(), "chunk size {n}");
            assert!(events(b64, "XyZ", n).is_err(), "chunk size {n}");
        }
        let binary = String::from_utf8_lossy(b64).replace("base64", "binary");
        assert!(events(binary.as_bytes(), "XyZ", 5).is_ok());
        // The first delimiter at the very start, or after a preamble without the boundary text.
        assert!(events(&BODY[b"preamble\r\n".len()..], "XyZ", 3).is_ok());
    }

    #[test]
    fn ambiguous_names_are_refused() {
        for cd in [
            "form-data; name=purpose",
            "form-data; name=\"a\"; name=\"b\"",
            "form-data; name*=utf-8''purpose",
            "form-data; name=\"pur\\\"pose\"",
            "attachment; name=\"purpose\"",
            "form-data; NAME=\"purpose\"",
            "form-data; nameame=x; name=\"purpose\"",
            "form-data; name=\"purpose\"; foo=bar",
            "form-data; name=\"file\"; filename=\"my name\"",
            "form-data; name=\"file\"; FileName=\"a\"",
        ] {
            let body = format!("--B\r\nContent-Disposition: {cd}\r\n\r\nx\r\n--B--\r\n");
            assert!(events(body.as_bytes(), "B", 3).is_err(), "{cd}");
        }
    }
}
