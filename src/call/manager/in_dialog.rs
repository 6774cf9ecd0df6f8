//! Requests inside a dialog: which call they belong to (§12.2.2) and re-INVITE/UPDATE
//! offers (hold, resume, a new address) passed on to the call's media, and our own offer
//! when a re-INVITE brings none.

use super::*;
use crate::media::sdp::AckAnswer;

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
            Ok(None) if req.method == rsip::Method::Invite => {
                // RFC 3261 §14.2: a re-INVITE without SDP asks for our offer, in the 2xx;
                // the answer comes in the ACK (`ack`). PBXs send these after a transfer.
                let offer = call.sdp.offer(&accepted);
                let r = self.build_dialog_response(&req, 200, "OK", &local_tag, Some(&offer));
                return self.endpoint.respond(key, r);
            }
            Ok(None) => {
                // An UPDATE without SDP only refreshes the session: confirm, nothing changes.
                let r = self.build_dialog_response(&req, 200, "OK", &local_tag, None);
                return self.endpoint.respond(key, r);
            }
            Err((code, _)) => {
                return self.reply(&key, &req, code, message::reason_phrase(code), None);
            }
        };
        match call.sdp.answer(&offer, &accepted) {
            Ok((negotiated, answer)) => {
                call.media.set_direction(negotiated.remote_direction);
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

    /// The ACK to a 2xx: when that 2xx carried our offer (a re-INVITE without SDP), the ACK
    /// carries the answer. An ACK cannot be refused: without a usable answer the session
    /// goes on as it was before the re-INVITE.
    pub(super) fn ack(&mut self, req: rsip::Request) {
        let Some(call) = self.find_call(&req).and_then(|ck| self.calls.get_mut(&ck)) else {
            return; // a late ACK of a call that is gone
        };
        // a body that is not SDP (or a multipart without one) answers nothing
        let body = crate::call::checks::sdp_offer(&req).ok().flatten();
        match call.sdp.on_ack(body.as_deref()) {
            AckAnswer::NotExpected => {}
            AckAnswer::Answer(negotiated) => {
                call.media.set_direction(negotiated.remote_direction);
                let _ = call.signals.send(CallSignal::MediaUpdate(negotiated));
            }
            AckAnswer::Missing => {
                tracing::info!(
                    "ACK without the answer to our offer; the session continues as it was"
                );
            }
            AckAnswer::Unusable(e) => {
                tracing::info!(error = %e, "unusable answer in ACK; the session continues as it was");
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
