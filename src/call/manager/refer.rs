//! REFER mode's SIP side (issue 14): our REFER in the caller's dialog, its answer, and the
//! NOTIFYs of the implicit subscription (RFC 3515), each handed to the call's task as a
//! `CallSignal`; what they mean is `call::transfer::refer`'s business.

use super::*;

impl CallManager {
    pub(super) fn send_refer(&mut self, key: &CallKey, refer_to: String) {
        let referred_by = format!("<{}>", self.contact_uri(rsip::Transport::Udp));
        let headers = vec![
            rsip::Header::Other("Refer-To".into(), refer_to),
            rsip::Header::Other("Referred-By".into(), referred_by),
        ];
        match self.send_in_dialog(key, rsip::Method::Refer, headers) {
            Some(tx) => {
                tracing::info!(call_id = %key.call_id, "transfer: REFER sent");
                self.refers.insert(tx, key.clone());
            }
            None => {
                if let Some(call) = self.calls.get(key) {
                    let _ = call.signals.send(CallSignal::ReferAnswer(500));
                }
            }
        }
    }

    pub(super) fn refer_answered(&mut self, tx: &TransactionKey, code: u16) {
        if code < 200 {
            return;
        }
        let Some(ck) = self.refers.remove(tx) else {
            return;
        };
        tracing::info!(call_id = %ck.call_id, code, "transfer: REFER answered");
        if let Some(call) = self.calls.get(&ck) {
            let _ = call.signals.send(CallSignal::ReferAnswer(code));
        }
    }

    /// NOTIFY: in a call's dialog, 200 and the body to the call (only a REFER of ours
    /// makes a subscription, and the call's task ignores a NOTIFY it is not waiting for);
    /// outside any dialog there is no subscription: 481 (RFC 6665 §4.1.3).
    pub(super) fn notify(&mut self, key: TransactionKey, req: rsip::Request) {
        let Some(ck) = self.dialog_for(&key, &req) else {
            return; // dialog_for answered 481
        };
        self.reply(&key, &req, 200, "OK", None);
        let state = req
            .headers
            .iter()
            .find_map(|h| match h {
                rsip::Header::SubscriptionState(s) => Some(s.value().to_owned()),
                rsip::Header::Other(n, v) if n.eq_ignore_ascii_case("Subscription-State") => {
                    Some(v.clone())
                }
                _ => None,
            })
            .unwrap_or_default();
        let body: String = String::from_utf8_lossy(&req.body)
            .chars()
            .take(512)
            .collect();
        if let Some(call) = self.calls.get(&ck) {
            let _ = call.signals.send(CallSignal::Notify { body, state });
        }
    }
}
