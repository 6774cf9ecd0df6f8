//! The end of a call: freeing its slots, sending our BYE where the caller really is, and
//! hearing what became of that BYE.
//!
//! Where our BYE goes (issue 11): with a route set, to its first hop (a proxy, which knows
//! the way); without one, to where the caller's requests come from (the INVITE's source),
//! not to its Contact. Behind NAT a Contact is a private address that nothing reaches, the
//! same reason `rport` sends responses to the source. A hostname hop is resolved on a task
//! of its own (never blocking the manager), and if it cannot be resolved the BYE goes to the
//! source rather than nowhere. A 401/407 or no answer at all to our BYE is logged and
//! counted; the call has ended either way.

use super::*;
use crate::sip::dialog::uri_socket_addr;
use std::sync::atomic::Ordering;

/// Where a BYE goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NextHop {
    Addr(SocketAddr),
    /// A hostname (from Record-Route): resolve, else fall back to the caller's source.
    Name(String, u16),
}

/// The next hop of an in-dialog request of ours. `source`/`transport`: where and how the
/// caller's INVITE came.
pub(super) fn next_hop(
    dialog: &Dialog,
    hop: &rsip::Uri,
    source: SocketAddr,
    transport: rsip::Transport,
) -> NextHop {
    if dialog.route_set().is_empty() {
        return NextHop::Addr(source);
    }
    match uri_socket_addr(hop) {
        // RFC 5923-style reuse: a TCP caller's own host is reached on the connection it
        // called on (its Contact port usually accepts no connections).
        Some(addr) if transport == rsip::Transport::Tcp && addr.ip() == source.ip() => {
            NextHop::Addr(source)
        }
        Some(addr) => NextHop::Addr(addr),
        None => NextHop::Name(
            hop.host().to_string(),
            hop.port().map(|p| *p.value()).unwrap_or(5060),
        ),
    }
}

impl CallManager {
    /// Free a call's trunk and global slots once its dialog is over (idempotent).
    pub(super) fn dialog_ended(&mut self, ck: &CallKey) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        if std::mem::replace(&mut call.ended, true) {
            return;
        }
        self.trunks.call_ended(call.trunk.as_deref());
        self.counters.active.fetch_sub(1, Ordering::Relaxed);
        self.counters.completed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn call_finished(&mut self, done: Finished) {
        let (key, send_bye) = match done {
            Finished::DialogOver { key, send_bye } => (key, send_bye),
            Finished::RecordWritten { key } => {
                self.dialog_ended(&key);
                if let Some(call) = self.calls.remove(&key) {
                    self.by_invite.remove(&call.invite);
                }
                return;
            }
        };
        // The caller's BYE (or CANCEL) already ended the dialog, crossing our decision to
        // hang up: a BYE of ours would only earn a 481.
        let caller_ended_it = self.calls.get(&key).is_some_and(|c| c.ended);
        self.dialog_ended(&key);
        if send_bye && !caller_ended_it {
            self.send_bye(&key);
        }
    }

    fn send_bye(&mut self, key: &CallKey) {
        let local = self.endpoint.local_addr();
        let host = self.advertised_ip().to_string();
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let (bye, hop) =
            call.dialog
                .new_request(rsip::Method::Bye, &host, local.port(), call.transport);
        if let Some(tx) = crate::sip::transaction::client_key(&bye) {
            self.byes.insert(tx, key.call_id.clone());
        }
        let source = call.source;
        match next_hop(&call.dialog, &hop, source, call.transport) {
            NextHop::Addr(dest) => self.endpoint.send(bye, dest),
            NextHop::Name(name, port) => {
                let endpoint = self.endpoint.clone();
                tokio::spawn(async move {
                    let resolved = tokio::net::lookup_host((name.as_str(), port))
                        .await
                        .ok()
                        .and_then(|mut addrs| addrs.next());
                    let dest = resolved.unwrap_or_else(|| {
                        tracing::warn!(host = %name, %source, "cannot resolve the BYE's next hop: sending it to the caller's source");
                        source
                    });
                    endpoint.send(bye, dest);
                });
            }
        }
    }

    /// A response to one of our requests: for our BYEs, a refusal is worth knowing.
    pub(super) fn bye_answered(&mut self, key: &TransactionKey, response: &rsip::Response) {
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let Some(call_id) = self.byes.remove(key) else {
            tracing::debug!(code, "response to our request");
            return;
        };
        match code {
            200..=299 | 481 => tracing::debug!(%call_id, code, "our BYE answered"),
            401 | 407 => {
                self.counters.bye_failed("auth");
                tracing::warn!(%call_id, code, "our BYE was refused for want of credentials; the call is over on our side");
            }
            _ => {
                self.counters.bye_failed("refused");
                tracing::warn!(%call_id, code, "our BYE was refused; the call is over on our side");
            }
        }
    }

    /// Timer F: no final answer to one of our requests.
    pub(super) fn bye_timed_out(&mut self, key: &TransactionKey) {
        match self.byes.remove(key) {
            Some(call_id) => {
                self.counters.bye_failed("timeout");
                tracing::warn!(%call_id, "our BYE got no answer; the call is over on our side");
            }
            None => tracing::debug!(method = %key.method, "our request timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> rsip::Request {
        let text = format!(
            "INVITE sip:8890@127.0.0.1:5071 SIP/2.0\r\n\
             {extra}Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKnat;rport=40404;received=127.0.0.1\r\n\
             From: <sip:citizen@10.9.9.9>;tag=c1\r\n\
             To: <sip:8890@127.0.0.1>\r\n\
             Call-ID: nat-1@10.9.9.9\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:citizen@10.9.9.9:5060>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match crate::sip::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn hop_of(req: &rsip::Request, source: SocketAddr) -> NextHop {
        let contact = rsip::Uri::try_from("sip:hotline@127.0.0.1:5071").unwrap();
        let mut dialog = Dialog::uas(req, "ours", contact).unwrap();
        let (_, hop) =
            dialog.new_request(rsip::Method::Bye, "127.0.0.1", 5071, rsip::Transport::Udp);
        next_hop(&dialog, &hop, source, rsip::Transport::Udp)
    }

    /// Issue 11: behind NAT the Contact (10.9.9.9) is unreachable; the INVITE came from
    /// 127.0.0.1:40404, and that is where our BYE must go.
    #[test]
    fn without_a_route_set_our_bye_goes_to_the_callers_source_not_its_contact() {
        let source: SocketAddr = "127.0.0.1:40404".parse().unwrap();
        assert_eq!(hop_of(&invite(""), source), NextHop::Addr(source));
    }

    #[test]
    fn with_a_route_set_our_bye_goes_to_the_first_hop_and_a_name_is_resolved_later() {
        let source: SocketAddr = "127.0.0.1:40404".parse().unwrap();
        let r = invite("Record-Route: <sip:192.0.2.50:5070;lr>\r\n");
        assert_eq!(
            hop_of(&r, source),
            NextHop::Addr("192.0.2.50:5070".parse().unwrap())
        );
        let r = invite("Record-Route: <sip:proxy.example.net;lr>\r\n");
        assert_eq!(
            hop_of(&r, source),
            NextHop::Name("proxy.example.net".into(), 5060),
            "a hostname is never silently skipped"
        );
    }
}
