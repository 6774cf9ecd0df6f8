//! RFC 4475 torture messages through `sip::message::parse`: what a UAS must make of each,
//! and a seeded mutation run that no input can make `parse` panic.
//!
//! The messages live outside the crate (`/work/shared/sip-torture/rfc4475/*.dat`). They are
//! looked for at `CARGO_MANIFEST_DIR/../shared/...` (the main checkout) and
//! `CARGO_MANIFEST_DIR/../../shared/...` (a helper worktree); when neither exists the
//! table test says so on stderr and checks nothing, and the mutation test falls back to a
//! built-in INVITE.

use std::path::PathBuf;

use hotline_gateway::sip::message::{self, parse, to_bytes, ParseError};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// What `parse` must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Parses; the application layer takes it from there.
    Request,
    Response,
    /// Well-formed request with a method rsip cannot hold: a ready 501.
    Unknown501,
    /// Answer with this status (400, or 416 / 505 where RFC 3261 says so).
    Reject(u16),
    /// A broken response: dropped and counted.
    DropResponse,
}
use Expect::*;

/// One line per message: file, expected outcome, RFC 4475 section and why.
/// Sections are those of RFC 4475 (§3.1.1 valid, §3.1.2 invalid, §3.2 transaction layer,
/// §3.3 application layer, §3.4 backward compatibility).
#[rustfmt::skip]
const TABLE: &[(&str, Expect, &str)] = &[
    ("wsinv",      Request,      "§3.1.1.1 short tortuous INVITE: folding, compact names, LWS everywhere"),
    ("intmeth",    Unknown501,   "§3.1.1.2 valid exotic method token; we implement no such method"),
    ("esc01",      Request,      "§3.1.1.3 valid % escaping"),
    ("escnull",    Request,      "§3.1.1.4 escaped NULs in URIs"),
    ("esc02",      Unknown501,   "§3.1.1.5 RE%47IST%45R is not REGISTER: unknown method"),
    ("lwsdisp",    Request,      "§3.1.1.6 no LWS between display name and <"),
    ("longreq",    Request,      "§3.1.1.7 long header values"),
    ("dblreq",     Request,      "§3.1.1.8 extra octets after Content-Length are discarded"),
    ("semiuri",    Request,      "§3.1.1.9 ; in the user part (rsip needed the dot workaround)"),
    ("transports", Request,      "§3.1.1.10 unknown transports in Via"),
    ("mpart01",    Request,      "§3.1.1.11 multipart body"),
    ("unreason",   Response,     "§3.1.1.12 unusual (UTF-8) reason phrase"),
    ("noreason",   Response,     "§3.1.1.13 empty reason phrase"),
    ("badinv01",   Reject(400),  "§3.1.2.1 empty Via/Contact parameters"),
    ("clerr",      Reject(400),  "§3.1.2.2 Content-Length larger than the message"),
    ("ncl",        Reject(400),  "§3.1.2.3 negative Content-Length"),
    ("scalar02",   Reject(400),  "§3.1.2.4 CSeq above 2^31 (Max-Forwards 300 too)"),
    ("scalarlg",   DropResponse, "§3.1.2.5 response with overlarge CSeq: dropped"),
    ("quotbal",    Reject(400),  "§3.1.2.6 unterminated quoted display name"),
    ("ltgtruri",   Reject(400),  "§3.1.2.7 Request-URI in <>"),
    ("lwsruri",    Reject(400),  "§3.1.2.8 LWS inside the Request-URI"),
    ("lwsstart",   Reject(400),  "§3.1.2.9 several SP between Request-Line elements"),
    ("trws",       Reject(400),  "§3.1.2.10 SP after the SIP-Version"),
    ("escruri",    Reject(400),  "§3.1.2.11 escaped headers in the Request-URI"),
    // EXCEPTION: RFC 4475 lets an element accept this unless it needs the Date value;
    // we never read Date, so rejecting it would only turn away a sloppy phone.
    ("baddate",    Request,      "§3.1.2.12 non-GMT Date: accepted on purpose (see comment)"),
    ("regbadct",   Reject(400),  "§3.1.2.13 Contact URI with ? not in <>"),
    ("badaspec",   Reject(400),  "§3.1.2.14 spaces inside <addr-spec>"),
    ("baddn",      Reject(400),  "§3.1.2.15 display name with a comma, unquoted"),
    ("badvers",    Reject(505),  "§3.1.2.16 SIP/7.0: 505 Version Not Supported, as the RFC asks"),
    ("mismatch01", Reject(400),  "§3.1.2.17 CSeq method differs from the Request-Line"),
    ("mismatch02", Reject(400),  "§3.1.2.18 unknown method and CSeq mismatch: 400 wins over 501"),
    ("bigcode",    DropResponse, "§3.1.2.19 status code 4294967301: dropped"),
    ("badbranch",  Request,      "§3.2.1 branch is the bare magic cookie: syntactically fine"),
    ("insuf",      Reject(400),  "§3.3.1 no From, To, Call-ID, Max-Forwards"),
    ("unkscm",     Reject(416),  "§3.3.2 unknown Request-URI scheme: 416"),
    ("novelsc",    Reject(416),  "§3.3.3 soap.beep Request-URI: 416 (we only do sip/sips)"),
    // Judgement call: the To/From/Contact schemes are unusual but the syntax is valid;
    // what to answer is the registrar's business (we are none: the TU refuses REGISTER).
    ("unksm2",     Request,      "§3.3.4 unknown schemes in To/From/Contact: parser accepts"),
    ("bext01",     Request,      "§3.3.5 unknown Require: the TU answers 420"),
    ("invut",      Request,      "§3.3.6 unknown Content-Type: the TU answers 415"),
    ("regaut01",   Request,      "§3.3.7 unknown Authorization scheme: parses"),
    ("multi01",    Reject(400),  "§3.3.8 several single-value headers (From, CSeq, Call-ID...)"),
    ("mcl01",      Reject(400),  "§3.3.9 two Content-Length values"),
    ("bcast",      DropResponse, "§3.3.10 response with two Vias: a UAC discards it (RFC 3261 §8.1.3.3)"),
    ("zeromf",     Request,      "§3.3.11 Max-Forwards 0: the TU's 483, not the parser's"),
    ("cparam01",   Request,      "§3.3.12 Contact param without <>: it is a header param"),
    ("cparam02",   Request,      "§3.3.13 URI param inside <>"),
    ("regescrt",   Request,      "§3.3.14 escaped Route header inside <> in Contact"),
    ("sdp01",      Request,      "§3.3.15 Accept nobody knows: the TU answers 406"),
    ("inv2543",    Request,      "§3.4.1 RFC 2543 INVITE: no branch, no Max-Forwards, accepted"),
];

fn torture_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        "../shared/sip-torture/rfc4475",
        "../../shared/sip-torture/rfc4475",
    ]
    .iter()
    .map(|rel| manifest.join(rel))
    .find(|p| p.is_dir())
}

fn outcome(bytes: &[u8]) -> Result<Expect, String> {
    match parse(bytes) {
        Ok(rsip::SipMessage::Request(_)) => Ok(Request),
        Ok(rsip::SipMessage::Response(_)) => Ok(Response),
        Err(ParseError::UnknownMethod { response, .. }) => {
            if response.status_code.code() == 501 {
                Ok(Unknown501)
            } else {
                Err(format!(
                    "UnknownMethod with {}",
                    response.status_code.code()
                ))
            }
        }
        Err(ParseError::BadRequest { response, .. }) => Ok(Reject(response.status_code.code())),
        Err(ParseError::BadResponse(_)) => Ok(DropResponse),
        Err(ParseError::Garbage(g)) => Err(format!("Garbage: {g}")),
    }
}

#[test]
fn rfc4475_messages_get_what_a_uas_must_do() {
    let Some(dir) = torture_dir() else {
        eprintln!(
            "SKIPPED: RFC 4475 messages not found next to the crate (../shared or ../../shared)"
        );
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
    let mut in_table: Vec<String> = TABLE.iter().map(|(n, _, _)| n.to_string()).collect();
    in_table.sort();
    assert_eq!(
        on_disk, in_table,
        "every message has exactly one line in the table"
    );
    assert_eq!(TABLE.len(), 49);

    let mut failures = Vec::new();
    for (name, expect, why) in TABLE {
        let bytes = std::fs::read(dir.join(format!("{name}.dat"))).unwrap();
        match outcome(&bytes) {
            Ok(got) if got == *expect => {}
            got => failures.push(format!("{name}: expected {expect:?}, got {got:?} ({why})")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn rejections_are_sendable_responses_matching_the_request() {
    let Some(dir) = torture_dir() else {
        eprintln!("SKIPPED: RFC 4475 messages not found");
        return;
    };
    for (name, expect, _) in TABLE {
        if !matches!(expect, Reject(_) | Unknown501) {
            continue;
        }
        let bytes = std::fs::read(dir.join(format!("{name}.dat"))).unwrap();
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
        eprintln!("SKIPPED: RFC 4475 messages not found");
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
            for (name, _, _) in TABLE {
                corpus.push(std::fs::read(dir.join(format!("{name}.dat"))).unwrap());
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
