//! REFER mode (RFC 3515): the caller's side is asked to call the target itself. Sans-IO:
//! the answers to our REFER and the NOTIFYs of the implicit subscription go in, with the
//! time; what became of the transfer comes out.
//!
//! 202 (or any 2xx) means "I will try"; the outcome is in the NOTIFYs' `message/sipfrag`
//! bodies: a 1xx is progress, a 2xx means the caller is now talking to the target (we then
//! hang up our leg), anything else, a refusal of the REFER, a subscription ended without
//! a final status, or no word before the deadline, means the transfer failed and the
//! caller leaves a message instead.

use super::context::Context;
use std::time::{Duration, Instant};

/// How long a REFER may take from sending to the final NOTIFY.
pub const REFER_TIMEOUT: Duration = Duration::from_secs(40);

/// What became of the REFER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferResult {
    /// The target answered the caller: our leg is no longer needed.
    Referred,
    /// Why not (for logs and the flow's `transfer` variable).
    Failed(String),
}

/// One REFER in flight.
#[derive(Debug)]
pub struct Refer {
    accepted: bool,
    deadline: Instant,
}

impl Refer {
    pub fn new(now: Instant) -> Refer {
        Refer {
            accepted: false,
            deadline: now + REFER_TIMEOUT,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The final answer to the REFER itself (408 for a transaction timeout).
    pub fn on_answer(&mut self, code: u16) -> Option<ReferResult> {
        match code {
            100..=199 => None,
            200..=299 => {
                self.accepted = true;
                None
            }
            _ => Some(ReferResult::Failed(format!("refer_refused_{code}"))),
        }
    }

    /// A NOTIFY of the refer subscription: its body and `Subscription-State`.
    pub fn on_notify(&mut self, body: &str, subscription_state: &str) -> Option<ReferResult> {
        self.accepted = true; // a NOTIFY may overtake the 202 (RFC 3515 §2.4.4)
        match sipfrag_status(body) {
            Some(200..=299) => return Some(ReferResult::Referred),
            Some(code) if code >= 300 => {
                return Some(ReferResult::Failed(format!("refer_failed_{code}")))
            }
            _ => {}
        }
        let terminated = subscription_state
            .trim()
            .to_ascii_lowercase()
            .starts_with("terminated");
        terminated.then(|| ReferResult::Failed("refer_subscription_ended".into()))
    }

    /// Nothing decisive by the deadline.
    pub fn on_time(&mut self, now: Instant) -> Option<ReferResult> {
        (now >= self.deadline).then(|| ReferResult::Failed("refer_timeout".into()))
    }
}

/// The status code of a `message/sipfrag` status line (`SIP/2.0 200 OK`).
pub fn sipfrag_status(body: &str) -> Option<u16> {
    let line = body.trim_start().lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}

/// The Refer-To value: the target with the context as URI headers (RFC 3261 §19.1.5).
pub fn refer_to(target: &str, cx: &Context) -> String {
    let sep = if target.contains('?') { '&' } else { '?' };
    format!("<{target}{sep}{}>", cx.uri_headers())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_then_a_200_sipfrag_means_referred() {
        let t0 = Instant::now();
        let mut r = Refer::new(t0);
        assert_eq!(r.on_answer(202), None);
        assert_eq!(
            r.on_notify("SIP/2.0 100 Trying\r\n", "active;expires=60"),
            None
        );
        assert_eq!(r.on_notify("SIP/2.0 180 Ringing\r\n", "active"), None);
        assert_eq!(
            r.on_notify("SIP/2.0 200 OK\r\n", "terminated;reason=noresource"),
            Some(ReferResult::Referred)
        );
    }

    #[test]
    fn refusal_failed_sipfrag_ended_subscription_and_silence_all_fail() {
        let t0 = Instant::now();
        assert_eq!(
            Refer::new(t0).on_answer(405),
            Some(ReferResult::Failed("refer_refused_405".into()))
        );
        let mut r = Refer::new(t0);
        r.on_answer(202);
        assert_eq!(
            r.on_notify("SIP/2.0 486 Busy Here", "terminated"),
            Some(ReferResult::Failed("refer_failed_486".into()))
        );
        let mut r = Refer::new(t0);
        assert_eq!(
            r.on_notify("garbage", "terminated;reason=timeout"),
            Some(ReferResult::Failed("refer_subscription_ended".into()))
        );
        let mut r = Refer::new(t0);
        r.on_answer(202);
        assert_eq!(r.on_time(t0 + Duration::from_secs(1)), None);
        assert_eq!(
            r.on_time(t0 + REFER_TIMEOUT),
            Some(ReferResult::Failed("refer_timeout".into()))
        );
    }

    #[test]
    fn sipfrag_status_line_only() {
        assert_eq!(sipfrag_status("SIP/2.0 603 Declined\r\n"), Some(603));
        assert_eq!(sipfrag_status("INVITE sip:x SIP/2.0"), None);
        assert_eq!(sipfrag_status("SIP/2.0 99999 X"), None);
        assert_eq!(sipfrag_status(""), None);
    }

    #[test]
    fn refer_to_carries_the_context_as_uri_headers() {
        let cx = Context {
            caller: "13812345678".into(),
            menu: "operator".into(),
            reference: String::new(),
            call_uid: "c-1".into(),
        };
        let v = refer_to("sip:8000@pbx.example.gov", &cx);
        assert!(v.starts_with("<sip:8000@pbx.example.gov?X-Hotline-Caller=13812345678&X-Hotline-Menu=operator&X-Hotline-Call-Uid=c-1&User-to-User="), "{v}");
        assert!(v.ends_with("%3Bencoding%3Dhex%3Bpurpose%3Dhotline>"), "{v}");
    }
}
