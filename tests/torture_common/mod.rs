//! The RFC 4475 torture messages and what must become of each, shared by the parser test
//! (`tests/torture.rs`) and the process-level test (`tests/it/torture.rs`), so the two
//! cannot drift apart.
//!
//! The messages live outside the crate (`/work/shared/sip-torture/rfc4475/*.dat`). They are
//! looked for at `CARGO_MANIFEST_DIR/../shared/...` (the main checkout) and
//! `CARGO_MANIFEST_DIR/../../shared/...` (a helper worktree).

#![allow(dead_code)]

use hotline_gateway::sip::message::{parse, ParseError};
use std::path::PathBuf;

/// What `sip::message::parse` must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
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

/// What the running daemon (`config/hotline.toml`: no trunks, numbers 8890 and 12345) puts
/// on the wire for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// A final response with this status code.
    Answer(u16),
    /// Nothing at all (responses that match no transaction of ours).
    Silent,
}

pub struct Case {
    pub name: &'static str,
    pub parser: Expect,
    pub daemon: Wire,
    /// RFC 4475 section and why.
    pub why: &'static str,
}

const fn case(name: &'static str, parser: Expect, daemon: Wire, why: &'static str) -> Case {
    Case {
        name,
        parser,
        daemon,
        why,
    }
}

use Expect::*;
use Wire::*;

/// One line per message: file, parser outcome, daemon answer, RFC 4475 section and why.
/// Sections are those of RFC 4475 (§3.1.1 valid, §3.1.2 invalid, §3.2 transaction layer,
/// §3.3 application layer, §3.4 backward compatibility).
///
/// Daemon answers to requests that parse: OPTIONS 200, REGISTER and MESSAGE 405 (we are no
/// registrar), INVITEs to a user that is no `[[number]]` 404. RFC 3261 §8.2.2.1 checks the
/// Request-URI before §8.2.2.3 Require and §8.2.3 content processing, so `invut` (415) and
/// `sdp01` (406) get their 404 first here; `bext01` (an OPTIONS) gets its 420.
#[rustfmt::skip]
pub const TABLE: &[Case] = &[
    case("wsinv",      Request,      Answer(481), "§3.1.1.1 short tortuous INVITE: folding, compact names, LWS everywhere (its To-tag names no dialog of ours: 481)"),
    case("intmeth",    Unknown501,   Answer(501), "§3.1.1.2 valid exotic method token; we implement no such method"),
    case("esc01",      Request,      Answer(404), "§3.1.1.3 valid % escaping"),
    case("escnull",    Request,      Answer(405), "§3.1.1.4 escaped NULs in URIs"),
    case("esc02",      Unknown501,   Answer(501), "§3.1.1.5 RE%47IST%45R is not REGISTER: unknown method"),
    case("lwsdisp",    Request,      Answer(200), "§3.1.1.6 no LWS between display name and <"),
    case("longreq",    Request,      Answer(404), "§3.1.1.7 long header values"),
    case("dblreq",     Request,      Answer(405), "§3.1.1.8 extra octets after Content-Length are discarded"),
    case("semiuri",    Request,      Answer(200), "§3.1.1.9 ; in the user part (rsip needed the dot workaround)"),
    case("transports", Request,      Answer(200), "§3.1.1.10 unknown transports in Via"),
    case("mpart01",    Request,      Answer(405), "§3.1.1.11 multipart body"),
    case("unreason",   Response,     Silent,      "§3.1.1.12 unusual (UTF-8) reason phrase"),
    case("noreason",   Response,     Silent,      "§3.1.1.13 empty reason phrase"),
    case("badinv01",   Reject(400),  Answer(400), "§3.1.2.1 empty Via/Contact parameters"),
    case("clerr",      Reject(400),  Answer(400), "§3.1.2.2 Content-Length larger than the message"),
    case("ncl",        Reject(400),  Answer(400), "§3.1.2.3 negative Content-Length"),
    case("scalar02",   Reject(400),  Answer(400), "§3.1.2.4 CSeq above 2^31 (Max-Forwards 300 too)"),
    case("scalarlg",   DropResponse, Silent,      "§3.1.2.5 response with overlarge CSeq: dropped"),
    case("quotbal",    Reject(400),  Answer(400), "§3.1.2.6 unterminated quoted display name"),
    case("ltgtruri",   Reject(400),  Answer(400), "§3.1.2.7 Request-URI in <>"),
    case("lwsruri",    Reject(400),  Answer(400), "§3.1.2.8 LWS inside the Request-URI"),
    case("lwsstart",   Reject(400),  Answer(400), "§3.1.2.9 several SP between Request-Line elements"),
    case("trws",       Reject(400),  Answer(400), "§3.1.2.10 SP after the SIP-Version"),
    case("escruri",    Reject(400),  Answer(400), "§3.1.2.11 escaped headers in the Request-URI"),
    // EXCEPTION: RFC 4475 lets an element accept this unless it needs the Date value;
    // we never read Date, so rejecting it would only turn away a sloppy phone.
    case("baddate",    Request,      Answer(404), "§3.1.2.12 non-GMT Date: accepted on purpose (see comment)"),
    case("regbadct",   Reject(400),  Answer(400), "§3.1.2.13 Contact URI with ? not in <>"),
    case("badaspec",   Reject(400),  Answer(400), "§3.1.2.14 spaces inside <addr-spec>"),
    case("baddn",      Reject(400),  Answer(400), "§3.1.2.15 display name with a comma, unquoted"),
    case("badvers",    Reject(505),  Answer(505), "§3.1.2.16 SIP/7.0: 505 Version Not Supported, as the RFC asks"),
    case("mismatch01", Reject(400),  Answer(400), "§3.1.2.17 CSeq method differs from the Request-Line"),
    case("mismatch02", Reject(400),  Answer(400), "§3.1.2.18 unknown method and CSeq mismatch: 400 wins over 501"),
    case("bigcode",    DropResponse, Silent,      "§3.1.2.19 status code 4294967301: dropped"),
    case("badbranch",  Request,      Answer(200), "§3.2.1 branch is the bare magic cookie: syntactically fine"),
    case("insuf",      Reject(400),  Answer(400), "§3.3.1 no From, To, Call-ID, Max-Forwards"),
    case("unkscm",     Reject(416),  Answer(416), "§3.3.2 unknown Request-URI scheme: 416"),
    case("novelsc",    Reject(416),  Answer(416), "§3.3.3 soap.beep Request-URI: 416 (we only do sip/sips)"),
    // Judgement call: the To/From/Contact schemes are unusual but the syntax is valid;
    // what to answer is the registrar's business (we are none: the TU refuses REGISTER).
    case("unksm2",     Request,      Answer(405), "§3.3.4 unknown schemes in To/From/Contact: parser accepts"),
    case("bext01",     Request,      Answer(420), "§3.3.5 unknown Require: the TU answers 420 with Unsupported"),
    case("invut",      Request,      Answer(404), "§3.3.6 unknown Content-Type: the TU's 415 comes after the number check"),
    case("regaut01",   Request,      Answer(405), "§3.3.7 unknown Authorization scheme: parses"),
    case("multi01",    Reject(400),  Answer(400), "§3.3.8 several single-value headers (From, CSeq, Call-ID...)"),
    case("mcl01",      Reject(400),  Answer(400), "§3.3.9 two Content-Length values"),
    case("bcast",      DropResponse, Silent,      "§3.3.10 response with two Vias: a UAC discards it (RFC 3261 §8.1.3.3)"),
    case("zeromf",     Request,      Answer(200), "§3.3.11 Max-Forwards 0 on an OPTIONS: an endpoint processes it normally"),
    case("cparam01",   Request,      Answer(405), "§3.3.12 Contact param without <>: it is a header param"),
    case("cparam02",   Request,      Answer(405), "§3.3.13 URI param inside <>"),
    case("regescrt",   Request,      Answer(405), "§3.3.14 escaped Route header inside <> in Contact"),
    case("sdp01",      Request,      Answer(404), "§3.3.15 Accept nobody knows: the TU's 406 comes after the number check"),
    case("inv2543",    Request,      Answer(404), "§3.4.1 RFC 2543 INVITE: no branch, no Max-Forwards, accepted"),
];

/// What `parse` made of `bytes`, in the table's terms (`Err` for what no line may say).
pub fn outcome(bytes: &[u8]) -> Result<Expect, String> {
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

/// The folder of RFC 4475 messages, or `None` (after saying so) when it is absent. Under CI
/// (`CI=true`) or `HOTLINE_REQUIRE_PEERS=1` / `HOTLINE_REQUIRE_SHARED=1` its absence fails the
/// test: a torture test that checked nothing must not pass there.
pub fn torture_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found = [
        "../shared/sip-torture/rfc4475",
        "../../shared/sip-torture/rfc4475",
    ]
    .iter()
    .map(|rel| manifest.join(rel))
    .find(|p| p.is_dir());
    if found.is_none() {
        let on = |k: &str, v: &str| std::env::var(k).as_deref() == Ok(v);
        assert!(
            !(on("CI", "true")
                || on("HOTLINE_REQUIRE_PEERS", "1")
                || on("HOTLINE_REQUIRE_SHARED", "1")),
            "RFC 4475 messages (../shared/sip-torture/rfc4475 beside the checkout) are required \
             under CI / HOTLINE_REQUIRE_PEERS=1 / HOTLINE_REQUIRE_SHARED=1"
        );
        eprintln!(
            "SKIPPED: RFC 4475 messages not found next to the crate (../shared or ../../shared)"
        );
    }
    found
}

/// The message's bytes as on disk.
pub fn read(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("{name}.dat"))).unwrap()
}
