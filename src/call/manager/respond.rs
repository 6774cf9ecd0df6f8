//! How the manager answers: our standard headers (Allow, Server), Retry-After, and the
//! Contact/SDP of 18x/2xx in a dialog, from this instance's own address.

use super::*;

impl CallManager {
    pub(super) fn advertised_ip(&self) -> IpAddr {
        advertised_ip(&self.services.config)
    }

    /// Our Contact; for a TCP caller with `;transport=tcp`, so its in-dialog requests (BYE)
    /// come over TCP too.
    pub(super) fn contact_uri(&self, transport: rsip::Transport) -> rsip::Uri {
        let port = self.endpoint.local_addr().port();
        let ip = self.advertised_ip();
        let param = if transport == rsip::Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let text = match ip {
            IpAddr::V4(v4) => format!("sip:hotline@{v4}:{port}{param}"),
            IpAddr::V6(v6) => format!("sip:hotline@[{v6}]:{port}{param}"),
        };
        rsip::Uri::try_from(text.as_str()).unwrap_or_default()
    }

    /// A response with our standard headers.
    pub(super) fn build(
        &self,
        req: &rsip::Request,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> rsip::Response {
        let mut resp = message::response(req, code, reason, to_tag);
        push(&mut resp, rsip::headers::Allow::new(ALLOW).into());
        push(
            &mut resp,
            rsip::headers::Server::new(self.services.config.sip.user_agent.clone()).into(),
        );
        resp
    }

    pub(super) fn reply(
        &self,
        key: &TransactionKey,
        req: &rsip::Request,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) {
        let resp = self.build(req, code, reason, to_tag);
        self.endpoint.respond(key.clone(), resp);
    }

    pub(super) fn retry_after(&self, resp: &mut rsip::Response) {
        let secs = self.services.config.limits.retry_after_secs;
        push(
            resp,
            rsip::headers::RetryAfter::new(secs.to_string()).into(),
        );
    }

    /// 18x/2xx that establish or live in a dialog: Contact, the request's Record-Route
    /// copied (RFC 3261 §12.1.1, so proxies stay in the path), and an optional SDP body.
    pub(super) fn build_dialog_response(
        &self,
        req: &rsip::Request,
        code: u16,
        reason: &str,
        local_tag: &str,
        sdp_body: Option<&str>,
    ) -> rsip::Response {
        let resp = self.build(req, code, reason, Some(local_tag));
        with_dialog_headers(resp, &self.contact_uri(self.request_transport), sdp_body)
    }
}
