use super::*;
use proptest::prelude::*;

/// What decoding a whole input gave: the data, the trailers if the body ended, the bytes left
/// in the buffer after the end.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    rest: Vec<u8>,
}

/// Feeds `pieces` one after the other, decoding until `NeedMore` after each. Checks on the way
/// that data is never empty and points into the buffer as it was before that call (zero copy),
/// that `NeedMore` means the buffer was used up, and that decoding after `End` fails.
fn feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Result<Outcome, ChunkedError> {
    let mut dec = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Outcome {
        data: Vec::new(),
        trailers: None,
        rest: Vec::new(),
    };
    for piece in pieces {
        buf.extend_from_slice(piece);
        while out.trailers.is_none() {
            let start = buf.as_ptr() as usize;
            let end = start + buf.len();
            match dec.decode(&mut buf)? {
                Decoded::Data(d) => {
                    assert!(!d.is_empty());
                    let at = d.as_ptr() as usize;
                    assert!(start <= at && at + d.len() <= end, "data was copied");
                    out.data.extend_from_slice(&d);
                }
                Decoded::NeedMore => {
                    assert!(buf.is_empty(), "NeedMore with {} bytes left", buf.len());
                    break;
                }
                Decoded::End { trailers } => {
                    assert!(dec.is_done());
                    out.trailers = Some(trailers);
                    let again = dec.decode(&mut BytesMut::from(&b"0\r\n\r\n"[..]));
                    assert_eq!(again, Err(ChunkedError("decoder already finished")));
                }
            }
        }
    }
    out.rest = buf.to_vec();
    Ok(out)
}

/// `input` cut into pieces of the sizes in `sizes` (cycled).
fn cut<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < input.len() {
        let n = sizes[i % sizes.len()].max(1).min(input.len() - at);
        pieces.push(&input[at..at + n]);
        at += n;
        i += 1;
    }
    pieces
}

/// Decodes `input` whole, one byte at a time and in pieces of 2, 3 and 7 bytes; all must agree.
fn decode_every_way(input: &[u8]) -> Result<Outcome, ChunkedError> {
    let whole = feed([input]);
    for sizes in [&[1][..], &[2], &[3, 7]] {
        assert_eq!(feed(cut(input, sizes)), whole, "pieces of {sizes:?}");
    }
    whole
}

/// Decodes a complete body with nothing after it: the data and the trailers.
fn body(input: &[u8]) -> (Vec<u8>, HeaderMap) {
    let out = decode_every_way(input).unwrap();
    assert!(out.rest.is_empty());
    (out.data, out.trailers.expect("the body did not end"))
}

fn error(input: &[u8]) -> &'static str {
    decode_every_way(input).unwrap_err().0
}

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn one_chunk() {
    assert_eq!(
        body(b"5\r\nhello\r\n0\r\n\r\n"),
        (b"hello".to_vec(), HeaderMap::new())
    );
}

#[test]
fn empty_body() {
    assert_eq!(body(b"0\r\n\r\n"), (Vec::new(), HeaderMap::new()));
}

#[test]
fn several_chunks_with_hex_in_either_case() {
    let data: Vec<u8> = (0..=255u8).cycle().take(26 + 26 + 255 + 3).collect();
    let mut input = Vec::new();
    for (size, part) in [
        ("1a", &data[..26]),
        ("1A", &data[26..52]),
        ("fF", &data[52..307]),
        ("3", &data[307..]),
    ] {
        input.extend_from_slice(format!("{size}\r\n").as_bytes());
        input.extend_from_slice(part);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(body(&input), (data, HeaderMap::new()));
}

#[test]
fn leading_zeros() {
    assert_eq!(body(b"0005\r\nhello\r\n000\r\n\r\n").0, b"hello");
    // Leading zeros are not significant digits: no overflow.
    assert_eq!(body(b"000000000000000000000001\r\nx\r\n0\r\n\r\n").0, b"x");
}

#[test]
fn extensions_are_skipped() {
    let input = b"5;name=value\r\nhello\r\n3 ; a=\"q;u\\\"o\\ted\"\t; b\r\nabc\r\n2\t \r\nde\r\n0;last=\"\x80\"\r\n\r\n";
    assert_eq!(body(input), (b"helloabcde".to_vec(), HeaderMap::new()));
}

#[test]
fn bare_lf_ends_lines() {
    assert_eq!(body(b"5\nhello\n0\n\n").0, b"hello");
    assert_eq!(
        body(b"5;x\nhello\r\n3\r\nabc\n0\nA: 1\nb: 2\r\n\n"),
        (b"helloabc".to_vec(), headers(&[("a", "1"), ("b", "2")]))
    );
}

#[test]
fn one_trailer() {
    assert_eq!(
        body(b"3\r\nabc\r\n0\r\nExpires: never\r\n\r\n").1,
        headers(&[("expires", "never")])
    );
}

#[test]
fn several_trailers() {
    let input =
        b"0\r\nX-A: one\r\nx-b:\ttwo  words \t\r\nx-a:three\r\nEmpty:\r\nSp:   \r\nObs: \xe9t\xe9\r\n\r\n";
    let mut expected = headers(&[
        ("x-a", "one"),
        ("x-b", "two  words"),
        ("x-a", "three"),
        ("empty", ""),
        ("sp", ""),
    ]);
    expected.append("obs", HeaderValue::from_bytes(b"\xe9t\xe9").unwrap());
    assert_eq!(body(input).1, expected);
}

#[test]
fn bytes_after_the_end_are_left_in_the_buffer() {
    let out = decode_every_way(b"2\r\nok\r\n0\r\nA: b\r\n\r\nHTTP/1.1 200 OK\r\n").unwrap();
    assert_eq!(out.data, b"ok");
    assert_eq!(out.rest, b"HTTP/1.1 200 OK\r\n");
}

#[test]
fn a_partly_buffered_chunk_comes_out_in_parts() {
    let mut dec = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"a\r\nhel"[..]);
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Decoded::Data(Bytes::from_static(b"hel")))
    );
    assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
    buf.extend_from_slice(b"lo worl\r\n0\r\n\r\n");
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Decoded::Data(Bytes::from_static(b"lo worl")))
    );
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Decoded::End {
            trailers: HeaderMap::new()
        })
    );
    assert!(buf.is_empty() && dec.is_done());
    assert_eq!(
        dec.decode(&mut buf),
        Err(ChunkedError("decoder already finished"))
    );
    assert_eq!(
        ChunkedDecoder::default().decode(&mut BytesMut::new()),
        Ok(Decoded::NeedMore)
    );
}

#[test]
fn need_more_at_every_cut_point() {
    let input: &[u8] = b"5;a=\"b;c\"\r\nhello\r\n00B\nhello world\r\n0 ; end\r\nX-One: 1\r\nx-two:  2 \n\r\n";
    let expected = Outcome {
        data: b"hellohello world".to_vec(),
        trailers: Some(headers(&[("x-one", "1"), ("x-two", "2")])),
        rest: Vec::new(),
    };
    for at in 0..input.len() {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&input[..at]);
        loop {
            match dec.decode(&mut buf) {
                Ok(Decoded::Data(_)) => {}
                Ok(Decoded::NeedMore) => break,
                other => panic!("cut at {at}: {other:?}"),
            }
        }
        assert!(buf.is_empty() && !dec.is_done(), "cut at {at}");
        assert_eq!(
            feed([&input[..at], &input[at..]]),
            Ok(expected.clone()),
            "cut at {at}"
        );
    }
    assert_eq!(decode_every_way(input), Ok(expected));
}

#[test]
fn data_is_not_copied() {
    let input: &[u8] = b"3\r\nabc\r\n4;x\r\ndefg\r\n0\r\n\r\n";
    let mut buf = BytesMut::from(input);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut dec = ChunkedDecoder::new();
    let mut parts = Vec::new();
    while let Decoded::Data(d) = dec.decode(&mut buf).unwrap() {
        assert!(range.contains(&(d.as_ptr() as usize)) && d.as_ptr() as usize + d.len() <= range.end);
        parts.push(d);
    }
    assert!(dec.is_done());
    assert_eq!(parts, [&b"abc"[..], b"defg"]);
    // At the offsets in the original buffer.
    assert_eq!(parts[0].as_ptr() as usize - range.start, 3);
    assert_eq!(parts[1].as_ptr() as usize - range.start, 13);
}

#[test]
fn bad_sizes() {
    assert_eq!(error(b"g\r\n"), "invalid chunk size");
    assert_eq!(error(b"5x\r\nhello\r\n"), "invalid chunk size");
    assert_eq!(error(b"0x5\r\n"), "invalid chunk size");
    assert_eq!(error(b"-1\r\n"), "invalid chunk size");
    assert_eq!(error(b" 5\r\n"), "invalid chunk size");
    assert_eq!(error(b"5 x\r\n"), "invalid character after chunk size");
    assert_eq!(error(b"\r\n"), "empty chunk size");
    assert_eq!(error(b"\n"), "empty chunk size");
    assert_eq!(error(b";ext\r\n"), "empty chunk size");
    assert_eq!(error(b"5\r\nhello\r\n\r\n"), "empty chunk size");
}

#[test]
fn size_overflow() {
    assert_eq!(error(b"10000000000000000\r\n"), "chunk size overflows u64");
    assert_eq!(error(b"ffffffffffffffffff\r\n"), "chunk size overflows u64");
    // 16 digits fit: the data just has not arrived.
    let out = decode_every_way(b"ffffffffffffffff\r\nabc").unwrap();
    assert_eq!((out.data, out.trailers), (b"abc".to_vec(), None));
}

#[test]
fn bad_chunk_data_terminator() {
    assert_eq!(
        error(b"5\r\nhelloX\r\n0\r\n\r\n"),
        "invalid chunk data terminator"
    );
    assert_eq!(error(b"5\r\nhello\rX"), "invalid chunk data terminator");
    assert_eq!(error(b"5\r\nhello\r\r\n"), "invalid chunk data terminator");
    assert_eq!(error(b"5\r\nhello0\r\n\r\n"), "invalid chunk data terminator");
}

#[test]
fn cr_without_lf() {
    assert_eq!(error(b"5\rX"), "CR not followed by LF in chunk size line");
    assert_eq!(error(b"5;ext\r\r\n"), "CR not followed by LF in chunk size line");
    assert_eq!(
        error(b"0\r\na: b\rc\r\n\r\n"),
        "CR not followed by LF in trailer section"
    );
    assert_eq!(
        error(b"0\r\na: b\r\r\n\r\n"),
        "CR not followed by LF in trailer section"
    );
    assert_eq!(error(b"0\r\n\r\r\n"), "CR not followed by LF in trailer section");
}

#[test]
fn control_characters_in_extensions() {
    assert_eq!(error(b"5;a=\x01\r\n"), "control character in chunk extension");
    assert_eq!(error(b"5;a=\x7f\r\n"), "control character in chunk extension");
    assert_eq!(error(b"5;a=\0\r\n"), "control character in chunk extension");
    assert_eq!(body(b"1;a=\tb\r\nx\r\n0\r\n\r\n").0, b"x");
}

#[test]
fn size_line_limit() {
    let line = |ext: usize| [&b"1;"[..], &vec![b'e'; ext], b"\r\nx\r\n0\r\n\r\n"].concat();
    // 1 + 1 + 4092 + 2 = 4096 bytes: the limit.
    assert_eq!(body(&line(4092)).0, b"x");
    assert_eq!(error(&line(4093)), "chunk size line too long");
    // Without a line end the limit holds as well, and so it does for zeros.
    assert_eq!(error(&vec![b'0'; 5000]), "chunk size line too long");
    let long = [&b"1;"[..], &vec![b'e'; 100_000]].concat();
    assert_eq!(error(&long), "chunk size line too long");
}

#[test]
fn trailer_section_limit() {
    // "0\r\n" then "x: " + value + "\r\n" + "\r\n": the section is value + 7 bytes.
    let section = |value: usize| [&b"0\r\nx: "[..], &vec![b'v'; value], b"\r\n\r\n"].concat();
    assert_eq!(
        body(&section(MAX_TRAILER_SECTION - 7)).1["x"].len(),
        MAX_TRAILER_SECTION - 7
    );
    assert_eq!(
        error(&section(MAX_TRAILER_SECTION - 6)),
        "trailer section too long"
    );
    // A line that never ends is refused once over the limit.
    let endless = [&b"0\r\nx: "[..], &vec![b'v'; 200_000]].concat();
    assert_eq!(error(&endless), "trailer section too long");
    // As are many fields, each well under the limit.
    let line = format!("x: {}\r\n", "v".repeat(700));
    let many = [&b"0\r\n"[..], line.repeat(99).as_bytes(), b"\r\n"].concat();
    assert_eq!(error(&many), "trailer section too long");
}

#[test]
fn trailer_count_limit() {
    let fields = |n: usize| {
        let lines: String = (0..n).map(|i| format!("f{i}: {i}\r\n")).collect();
        format!("0\r\n{lines}\r\n").into_bytes()
    };
    assert_eq!(body(&fields(MAX_TRAILER_FIELDS)).1.len(), MAX_TRAILER_FIELDS);
    assert_eq!(error(&fields(MAX_TRAILER_FIELDS + 1)), "too many trailer fields");
}

#[test]
fn malformed_trailers() {
    assert_eq!(
        error(b"0\r\nno colon\r\n\r\n"),
        "trailer field line without colon"
    );
    assert_eq!(error(b"0\r\nbad name: v\r\n\r\n"), "invalid trailer field name");
    assert_eq!(error(b"0\r\nname : v\r\n\r\n"), "invalid trailer field name");
    assert_eq!(error(b"0\r\n: v\r\n\r\n"), "invalid trailer field name");
    assert_eq!(error(b"0\r\na(b): v\r\n\r\n"), "invalid trailer field name");
    assert_eq!(error(b"0\r\na: b\x01c\r\n\r\n"), "invalid trailer field value");
    assert_eq!(error(b"0\r\na: b\x7f\r\n\r\n"), "invalid trailer field value");
}

#[test]
fn folded_trailer_line() {
    assert_eq!(
        error(b"0\r\na: b\r\n c\r\n\r\n"),
        "obsolete line folding in trailer section"
    );
    assert_eq!(
        error(b"0\r\na: b\r\n\tc\r\n\r\n"),
        "obsolete line folding in trailer section"
    );
    assert_eq!(
        error(b"0\r\n a: b\r\n\r\n"),
        "obsolete line folding in trailer section"
    );
}

#[test]
fn errors_are_sticky_and_displayed() {
    let mut dec = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"zz\r\n"[..]);
    assert_eq!(dec.decode(&mut buf), Err(ChunkedError("invalid chunk size")));
    let mut good = BytesMut::from(&b"0\r\n\r\n"[..]);
    assert_eq!(dec.decode(&mut good), Err(ChunkedError("invalid chunk size")));
    assert!(!dec.is_done());
    assert_eq!(ChunkedError("x").to_string(), "malformed chunked body: x");
}

/// One chunk: its data, its extension, how many leading zeros and whether the hex is upper case.
fn chunk() -> impl Strategy<Value = (Vec<u8>, String, usize, bool)> {
    (
        proptest::collection::vec(any::<u8>(), 1..300),
        extension(),
        0usize..3,
        any::<bool>(),
    )
}

/// Whitespace, then extensions with tokens or quoted strings, or nothing.
fn extension() -> impl Strategy<Value = String> {
    "[ \t]{0,2}(;[ \t]?[a-z]{1,5}([ \t]?=[ \t]?([a-z0-9]{1,5}|\"[a-z ;=\\\\\"]{0,8}\"))?){0,3}"
}

/// A trailer field: name, OWS, value, OWS.
fn trailer() -> impl Strategy<Value = (String, String, String, String)> {
    (
        "[A-Za-z][A-Za-z0-9-]{0,10}",
        "[ \t]{0,2}",
        "([!-~]([ -~]{0,18}[!-~])?)?",
        "[ \t]{0,2}",
    )
}

/// A cut size, mostly 1 to 3 bytes.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(prop_oneof![3 => 1usize..4, 1 => 1usize..200], 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However a valid encoding is cut, it decodes to what was encoded, the same as whole;
    /// a corrupted one gives the same verdict whole and cut, and nothing panics.
    #[test]
    fn any_encoding_decodes_the_same_however_cut(
        chunks in proptest::collection::vec(chunk(), 0..8),
        last_zeros in 1usize..4,
        last_ext in extension(),
        trailers in proptest::collection::vec(trailer(), 0..5),
        lf in proptest::collection::vec(any::<bool>(), 1..16),
        after in "[ -~]{0,10}",
        cuts in cuts(),
        flip_at in any::<proptest::sample::Index>(),
        insert: bool,
        byte in prop_oneof![any::<u8>(), proptest::sample::select(b"\r\n;:0aF \t\x00".to_vec())],
    ) {
        let mut eol = lf.iter().cycle().map(|&lf| if lf { &b"\n"[..] } else { b"\r\n" });
        let mut input = Vec::new();
        let mut data = Vec::new();
        for (part, ext, zeros, upper) in &chunks {
            let size = if *upper { format!("{:X}", part.len()) } else { format!("{:x}", part.len()) };
            input.extend_from_slice(format!("{}{size}{ext}", "0".repeat(*zeros)).as_bytes());
            input.extend_from_slice(eol.next().unwrap());
            input.extend_from_slice(part);
            input.extend_from_slice(eol.next().unwrap());
            data.extend_from_slice(part);
        }
        input.extend_from_slice(format!("{}{last_ext}", "0".repeat(last_zeros)).as_bytes());
        input.extend_from_slice(eol.next().unwrap());
        let mut expected = HeaderMap::new();
        for (name, ows1, value, ows2) in &trailers {
            input.extend_from_slice(format!("{name}:{ows1}{value}{ows2}").as_bytes());
            input.extend_from_slice(eol.next().unwrap());
            expected.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        input.extend_from_slice(eol.next().unwrap());
        input.extend_from_slice(after.as_bytes());

        let expected = Outcome { data, trailers: Some(expected), rest: after.into_bytes() };
        prop_assert_eq!(&feed(cut(&input, &cuts)), &Ok(expected.clone()));
        prop_assert_eq!(&feed(cut(&input, &[1])), &Ok(expected.clone()));
        prop_assert_eq!(&feed([&input[..]]), &Ok(expected));

        let mut corrupt = input.clone();
        let at = flip_at.index(corrupt.len() + 1);
        if insert || at == corrupt.len() {
            corrupt.insert(at, byte);
        } else {
            corrupt[at] ^= byte.max(1);
        }
        let whole = feed([&corrupt[..]]);
        prop_assert_eq!(&feed(cut(&corrupt, &cuts)), &whole);
        prop_assert_eq!(feed(cut(&corrupt, &[1])), whole);
    }
}
