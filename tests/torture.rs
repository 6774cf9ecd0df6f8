//! RFC 4475 torture messages through `sip::message::parse`: what a UAS must make of each,
//! and a seeded mutation run that no input can make `parse` panic.
//!
//! The messages live outside the crate (`/work/shared/sip-torture/rfc4475/*.dat`). They are
//! looked for at `CARGO_MANIFEST_DIR/../shared/...` (the main checkout) and
//! `CARGO_MANIFEST_DIR/../../shared/...` (a helper worktree); when neither exists the
//! table test says so on stderr and checks nothing, and the mutation test falls back to a
//! built-in INVITE, except under CI (`CI=true`) or `HOTLINE_REQUIRE_PEERS=1` /
//! `HOTLINE_REQUIRE_SHARED=1`, where a missing folder fails the tests.

use hotline_gateway::sip::message::{self, parse, to_bytes, ParseError};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "torture_common/mod.rs"]
mod torture_common;
use torture_common::{outcome, torture_dir, Expect, Wire, TABLE};
use Expect::*;

#[test]
fn rfc4475_messages_get_what_a_uas_must_do() {
    let Some(dir) = torture_dir() else {
        return;
    };
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".dat")
                .map(String::from)
        })
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = TABLE.iter().map(|c| c.name.to_string()).collect();
    in_table.sort();
    assert_eq!(
        on_disk, in_table,
        "every message has exactly one line in the table"
    );
    assert_eq!(TABLE.len(), 49);

    let mut failures = Vec::new();
    for case in TABLE {
        let (name, expect, why) = (case.name, case.parser, case.why);
        let bytes = torture_common::read(&dir, name);
        match outcome(&bytes) {
            Ok(got) if got == expect => {}
            got => failures.push(format!("{name}: expected {expect:?}, got {got:?} ({why})")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_daemon_column_follows_the_parser_column_where_the_parser_decides() {
    // The process-level test (tests/it/torture.rs) checks the `daemon` column on the wire;
    // where the parser already decides, the two columns must say the same thing.
    for case in TABLE {
        let implied = match case.parser {
            Reject(code) => Some(Wire::Answer(code)),
            Unknown501 => Some(Wire::Answer(501)),
            Response | DropResponse => Some(Wire::Silent),
            Request => None,
        };
        match implied {
            Some(w) => assert_eq!(case.daemon, w, "{}", case.name),
            None => assert!(
                matches!(case.daemon, Wire::Answer(200..=699)),
                "{}: a request that parses gets a final answer",
                case.name
            ),
        }
    }
}

#[test]
fn rejections_are_sendable_responses_matching_the_request() {
    let Some(dir) = torture_dir() else {
        return;
    };
    for case in TABLE {
        let name = case.name;
        if !matches!(case.parser, Reject(_) | Unknown501) {
            continue;
        }
        let bytes = torture_common::read(&dir, name);
        let (response, reason) = match parse(&bytes) {
            Err(ParseError::BadRequest { response, reason }) => (response, Some(reason)),
            Err(ParseError::UnknownMethod { response, .. }) => (response, None),
            other => panic!("{name}: {other:?}"),
        };
        let wire = to_bytes(&(*response).clone().into());
        let text = String::from_utf8(wire.clone()).unwrap();
        let code = response.status_code.code();
        assert!(
            text.starts_with(&format!(
                "SIP/2.0 {code} {}\r\n",
                message::reason_phrase(code)
            )),
            "{name}: {text}"
        );
        assert!(
            rsip::SipMessage::try_from(wire.as_slice()).is_ok(),
            "{name}: {text}"
        );
        // The top Via (transaction match) and CSeq come back as the request had them.
        let raw = String::from_utf8_lossy(&bytes);
        let request_branch = raw
            .lines()
            .find(|l| l.starts_with("Via:"))
            .and_then(|l| l.split("branch=").nth(1))
            .map(|b| b.trim());
        let top = message::header_values(&*response, "Via").into_iter().next();
        if let Some(branch) = request_branch {
            assert!(
                top.as_deref().unwrap_or("").contains(branch),
                "{name}: {top:?}"
            );
        }
        if let Some(to) = message::header_value(&*response, "To") {
            assert!(to.contains(";tag="), "{name}: To-tag in {to}");
        }
        if let Some(reason) = reason {
            assert!(
                text.contains(&format!("Warning: 399 hotline-gateway \"{reason}\"")),
                "{name}"
            );
        }
    }
}

#[test]
fn wsinv_reads_as_the_rfc_means_it() {
    let Some(dir) = torture_dir() else {
        return;
    };
    let bytes = std::fs::read(dir.join("wsinv.dat")).unwrap();
    let Ok(rsip::SipMessage::Request(r)) = parse(&bytes) else {
        panic!("wsinv must parse");
    };
    assert_eq!(r.method, rsip::Method::Invite);
    assert_eq!(
        message::call_id(&r).as_deref(),
        Some("wsinv.ndaksdj@192.0.2.1")
    );
    assert_eq!(message::cseq_number(&r), Some(9));
    assert_eq!(message::from_tag(&r).as_deref(), Some("98asjd8"));
    assert_eq!(message::to_tag(&r).as_deref(), Some("1918181833n"));
    assert_eq!(
        message::header_value(&r, "Max-Forwards").as_deref(),
        Some("68")
    );
    let via = message::top_via(&r).unwrap();
    assert_eq!(
        (via.sent_by_host.as_str(), via.branch.as_deref()),
        ("192.0.2.2", Some("390skdjuw"))
    );
    assert_eq!(message::header_values(&r, "Via").len(), 3);
    assert_eq!(r.body.len(), 150);
    // What we hand on survives our own serialiser.
    assert!(parse(&to_bytes(&r.into())).is_ok());
}

const SEED_INVITE: &[u8] = b"INVITE sip:8890@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKseed;rport\r\n\
Max-Forwards: 70\r\nFrom: \"A\" <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:8890@127.0.0.1>\r\n\
Call-ID: seed@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5062>\r\n\
Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b" ",
        b"\t",
        b":",
        b";",
        b",",
        b"\"",
        b"<",
        b">",
        b"@",
        b"[",
        b"]",
        b"%",
        b"\\",
        b"\r\n ",
        b"\xff",
        b"\x00",
        b"=",
        b"/",
        b"SIP/2.0",
        b"Content-Length: 99999999999999999999",
        b"v: ",
        b"l: -1",
    ];
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..6) {
        let len = out.len().max(1);
        let at = rng.gen_range(0..len).min(out.len());
        match rng.gen_range(0..5) {
            0 if !out.is_empty() => {
                let i = rng.gen_range(0..out.len());
                out[i] = rng.gen();
            }
            1 => {
                let piece = INTERESTING[rng.gen_range(0..INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + rng.gen_range(1..40)).min(out.len());
                out.drain(at..end);
            }
            3 if !out.is_empty() => {
                let end = (at + rng.gen_range(1..80)).min(out.len());
                let chunk = out[at..end].to_vec();
                let to = rng.gen_range(0..out.len());
                out.splice(to..to, chunk);
            }
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn ten_thousand_mutations_never_panic() {
    let mut corpus: Vec<Vec<u8>> = vec![SEED_INVITE.to_vec()];
    match torture_dir() {
        Some(dir) => {
            for case in TABLE {
                corpus.push(torture_common::read(&dir, case.name));
            }
        }
        None => eprintln!("RFC 4475 messages not found: mutating the built-in INVITE only"),
    }
    // Seed and count can be raised for a longer local run; the default is fixed.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut rng = StdRng::seed_from_u64(env("TORTURE_SEED", 4475));
    let mut parsed = 0;
    for i in 0..env("TORTURE_ITERATIONS", 10_000) {
        let base = &corpus[rng.gen_range(0..corpus.len())];
        let input = mutate(&mut rng, base);
        let result = std::panic::catch_unwind(|| match parse(&input) {
            // Whatever we accept must survive our own serialiser and parse again.
            Ok(msg) => {
                let wire = to_bytes(&msg);
                parse(&wire).map(|_| true).map_err(|e| (e, wire))
            }
            Err(
                ParseError::BadRequest { response, .. }
                | ParseError::UnknownMethod { response, .. },
            ) => {
                let _ = to_bytes(&(*response).into());
                Ok(false)
            }
            Err(_) => Ok(false),
        });
        match result {
            Ok(Ok(ok)) => parsed += usize::from(ok),
            Ok(Err((e, wire))) => panic!(
                "iteration {i}: accepted input does not re-parse after to_bytes: {e}\ninput: {:?}\nwire: {:?}",
                String::from_utf8_lossy(&input),
                String::from_utf8_lossy(&wire)
            ),
            Err(_) => panic!("iteration {i}: parse panicked on {:?}", String::from_utf8_lossy(&input)),
        }
    }
    // The run is not vacuous: some mutants are still valid messages.
    assert!(parsed > 100, "only {parsed} mutants parsed");
}
