//! Any offer body through the answerer (what a caller's INVITE controls), and any answer
//! through the test caller's parser. Errors are fine; panics are not.
#![no_main]

use hotline_gateway::media::{sdp, Codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let local = "10.0.0.1:20000".parse().unwrap();
    if let Ok((_negotiated, answer)) = sdp::answer(&text, &[Codec::Pcmu, Codec::Pcma], local, 1) {
        // what we answer must be readable by our own caller
        sdp::parse_answer(&answer).expect("our own answer parses");
    }
    let _ = sdp::parse_answer(&text);
});
