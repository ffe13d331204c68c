//! scan_json vs serde_json: aborts on any disagreement (see tests/support/oracle.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = oracle::check(data) {
        panic!("disagreement on {:?}: {why}", String::from_utf8_lossy(data));
    }
});
