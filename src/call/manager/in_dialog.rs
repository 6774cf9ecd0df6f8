//! Requests inside a dialog: which call they belong to (§12.2.2) and re-INVITE/UPDATE
//! offers (hold, resume, a new address) passed on to the call's media.

use super::*;

impl CallManager {
    /// re-INVITE / UPDATE in a dialog: session refresh, hold/resume, new address.
    pub(super) fn renegotiate(&mut self, key: TransactionKey, req: rsip::Request) {
        let Some(ck) = self.dialog_for(&key, &req) else {
            return;
        };
        if req.method == rsip::Method::Invite {
            if let Some(call) = self.calls.get_mut(&ck) {
                call.dialog.refresh_remote_target(&req);
            }
        }
        let accepted: Vec<Codec> = self
            .services
            .config
            .media
            .codecs
            .iter()
            .filter_map(|c| Codec::from_name(c))
            .collect();
        let Some(call) = self.calls.get_mut(&ck) else {
            return;
        };
        let local_tag = ck.local_tag.clone();
        let offer = match crate::call::checks::sdp_offer(&req) {
            Ok(Some(offer)) => offer,
            Ok(None) => {
                // A refresh without SDP: confirm, nothing changes.
                let r = self.build_dialog_response(&req, 200, "OK", &local_tag, None);
                return self.endpoint.respond(key, r);
            }
            Err((code, _)) => {
                return self.reply(&key, &req, code, message::reason_phrase(code), None);
            }
        };
        call.sdp_version += 1;
        let session = call.sdp_session;
        let local_rtp = call.local_rtp;
        match sdp::answer(&offer, &accepted, local_rtp, session) {
            Ok((negotiated, answer)) => {
                let _ = call.signals.send(CallSignal::MediaUpdate(negotiated));
                let r = self.build_dialog_response(&req, 200, "OK", &local_tag, Some(&answer));
                self.endpoint.respond(key, r);
            }
            Err(e) => {
                tracing::info!(error = %e, "re-offer rejected; the call continues as it was");
                self.reply(&key, &req, 488, "Not Acceptable Here", None);
            }
        }
    }

    /// The call an in-dialog request belongs to, after the §12.2.2 CSeq check. Answers the
    /// request itself (481 no such dialog, 500 CSeq out of order) and returns `None` when it
    /// must go no further.
    pub(super) fn dialog_for(
        &mut self,
        key: &TransactionKey,
        req: &rsip::Request,
    ) -> Option<CallKey> {
        let Some(ck) = self.find_call(req) else {
            self.reply(key, req, 481, "Call/Transaction Does Not Exist", None);
            return None;
        };
        let call = self.calls.get_mut(&ck)?;
        if let Err(e) = call.dialog.check_remote_cseq(req) {
            tracing::info!(error = %e, "in-dialog request out of order");
            self.reply(key, req, 500, "Server Internal Error", None);
            return None;
        }
        Some(ck)
    }

    pub(super) fn find_call(&self, req: &rsip::Request) -> Option<CallKey> {
        let call_id = req.call_id_header().ok()?.value().to_string();
        let tag = to_tag(req)?;
        let ck = CallKey {
            call_id,
            local_tag: tag,
        };
        self.calls
            .get(&ck)
            .filter(|c| c.dialog.matches(req))
            .map(|_| ck)
    }
}
