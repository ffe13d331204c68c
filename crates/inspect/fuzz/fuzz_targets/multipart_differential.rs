//! scan_multipart vs multer (axum's parser) on the same body: whenever we accept a form, a
//! server using multer must read each requested field exactly as we did: absent when we found
//! none, once and with the same bytes when we found it. multer rejecting a body we accept is
//! fine (that server refuses it too); reading it differently is not.
#![no_main]

use libfuzzer_sys::fuzz_target;

const BOUNDARY: &str = "XyZ";
const FIELDS: &[&str] = &["model", "purpose"];

fn multer_fields(body: &[u8]) -> Option<Vec<(Option<String>, Vec<u8>)>> {
    let data = bytes::Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(data) });
    let mut m = multer::Multipart::new(stream, BOUNDARY);
    futures_executor::block_on(async {
        let mut out = Vec::new();
        loop {
            match m.next_field().await {
                Ok(Some(f)) => {
                    let name = f.name().map(str::to_string);
                    let bytes = f.bytes().await.ok()?;
                    out.push((name, bytes.to_vec()));
                }
                Ok(None) => return Some(out),
                Err(_) => return None,
            }
        }
    })
}

fuzz_target!(|body: &[u8]| {
    let Ok(scan) = inspect::scan_multipart(body, BOUNDARY, FIELDS) else {
        return;
    };
    let Some(theirs) = multer_fields(body) else { return };
    for (i, name) in FIELDS.iter().enumerate() {
        let ours = scan.field(i).map(|f| f.value.as_bytes().to_vec());
        let found: Vec<&Vec<u8>> = theirs
            .iter()
            .filter(|(n, _)| n.as_deref() == Some(*name))
            .map(|(_, v)| v)
            .collect();
        match (&ours, found.as_slice()) {
            (None, []) => {}
            (Some(a), [b]) if a == *b => {}
            _ => panic!(
                "field {name:?}: ours {:?}, multer {:?}; body {:?}",
                ours.as_deref().map(String::from_utf8_lossy),
                found
                    .iter()
                    .map(|v| String::from_utf8_lossy(v))
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(body)
            ),
        }
    }
});
