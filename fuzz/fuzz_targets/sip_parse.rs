//! Any datagram through the gateway's SIP receive path: parse (with the fix-ups and
//! Content-Length checks), Via stamping, and the transaction layer. Nothing may panic.
#![no_main]

use hotline_gateway::sip::message::{self, ParseError};
use hotline_gateway::sip::transaction::{TimerConfig, TransactionLayer};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let source = "192.0.2.1:5060".parse().unwrap();
    let now = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    match message::parse(data) {
        Ok(rsip::SipMessage::Request(mut req)) => {
            message::stamp_via(&mut req, source);
            let _ = message::to_bytes(&rsip::SipMessage::Request(req.clone()));
            let answer = message::response(&req, 200, "OK", None);
            layer.handle_request(now, req, source);
            while let Some(ev) = layer.poll_event() {
                if let hotline_gateway::sip::transaction::TransactionEvent::Request {
                    key, ..
                } = ev
                {
                    let _ = layer.respond(now, &key, answer.clone());
                }
            }
        }
        Ok(rsip::SipMessage::Response(resp)) => layer.handle_response(now, resp, source),
        Err(ParseError::BadRequest { response, .. } | ParseError::UnknownMethod { response, .. }) => {
            let _ = message::to_bytes(&rsip::SipMessage::Response(*response));
        }
        Err(_) => {}
    }
    while layer.poll_transmit().is_some() {}
    layer.handle_timeout(now + Duration::from_secs(64));
    while layer.poll_transmit().is_some() {}
});
