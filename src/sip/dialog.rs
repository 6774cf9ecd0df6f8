//! Dialogs (RFC 3261 §12): identity, route set, CSeq, and building in-dialog requests.
//!
//! A [`Dialog`] is plain state built from the messages that created it; it does no I/O and
//! knows no transactions. Header values are kept as the peer wrote them (From/To with
//! display names, Record-Route entries verbatim) because §12.2.1.1 wants them echoed, not
//! re-invented. Only loose routing (`;lr`, RFC 3261) is the norm; strict routers (RFC 2543)
//! are handled as §12.2.1.1 describes.
//!
//! OWNER: sip-message helper.

use rsip::headers::UntypedHeader;
use rsip::Header;

use super::message::{
    self, call_id, cseq_number, from_tag, grammar, header_value, header_values, parse_uri, to_tag,
    uri_to_string,
};

/// Identifies a dialog (§12): Call-ID plus both tags, from our point of view.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    /// Empty when an RFC 2543 peer sent no From-tag (§12.1.1 allows a null remote tag).
    pub remote_tag: String,
}

/// Why a dialog could not be built or a request does not fit it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialogError {
    /// A header the dialog needs is missing or unreadable.
    #[error("missing or malformed {0}")]
    Malformed(&'static str),
    /// §12.2.2: a remote CSeq lower than the last one; the TU answers 500.
    #[error("CSeq {got} is lower than the dialog's remote CSeq {last}")]
    CSeqOutOfOrder { got: u32, last: u32 },
}

/// One side of a confirmed (or early) dialog.
#[derive(Clone, Debug)]
pub struct Dialog {
    id: DialogId,
    /// From value of our requests (our URI + our tag), as it appeared in the dialog's
    /// creating messages.
    local_party: String,
    /// To value of our requests (their URI + their tag).
    remote_party: String,
    local_uri: String,
    remote_uri: String,
    remote_target: rsip::Uri,
    /// Route values in the order they go into our requests (§12.1.1 / §12.1.2).
    route_set: Vec<String>,
    local_contact: rsip::Uri,
    /// Last CSeq we used; our next request uses one more.
    local_cseq: u32,
    /// Highest CSeq seen from the peer (`None` until it sends a request, on the UAC side).
    remote_cseq: Option<u32>,
}

fn uri_of(value: &str) -> Option<String> {
    grammar::parse_name_addr(value).ok().map(|n| n.uri)
}

fn contact_target(message: &impl rsip::message::HasHeaders) -> Result<rsip::Uri, DialogError> {
    let contact = header_value(message, "Contact").ok_or(DialogError::Malformed("Contact"))?;
    uri_of(&contact)
        .and_then(|u| parse_uri(&u))
        .ok_or(DialogError::Malformed("Contact"))
}

impl Dialog {
    /// The UAS side (§12.1.1): from the INVITE we answer with a 2xx carrying `local_tag`
    /// in To and `local_contact` in Contact. Route set = Record-Route in order.
    pub fn uas(
        invite: &rsip::Request,
        local_tag: &str,
        local_contact: rsip::Uri,
    ) -> Result<Dialog, DialogError> {
        let call_id = call_id(invite).ok_or(DialogError::Malformed("Call-ID"))?;
        let from = header_value(invite, "From").ok_or(DialogError::Malformed("From"))?;
        let to = header_value(invite, "To").ok_or(DialogError::Malformed("To"))?;
        let remote_cseq = cseq_number(invite).ok_or(DialogError::Malformed("CSeq"))?;
        let local_party = match to_tag(invite) {
            Some(_) => to.clone(),
            None => format!("{to};tag={local_tag}"),
        };
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_string(),
                remote_tag: from_tag(invite).unwrap_or_default(),
            },
            local_uri: uri_of(&to).ok_or(DialogError::Malformed("To"))?,
            remote_uri: uri_of(&from).ok_or(DialogError::Malformed("From"))?,
            local_party,
            remote_party: from,
            remote_target: contact_target(invite)?,
            route_set: record_routes(invite),
            local_contact,
            local_cseq: 0,
            remote_cseq: Some(remote_cseq),
        })
    }

    /// The UAC side (§12.1.2): from our INVITE and the 2xx (or tagged 1xx) answering it.
    /// Route set = the response's Record-Route reversed.
    pub fn uac(invite: &rsip::Request, response: &rsip::Response) -> Result<Dialog, DialogError> {
        let call_id = call_id(invite).ok_or(DialogError::Malformed("Call-ID"))?;
        let from = header_value(invite, "From").ok_or(DialogError::Malformed("From"))?;
        let to = header_value(response, "To").ok_or(DialogError::Malformed("To"))?;
        let mut route_set = record_routes(response);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: from_tag(invite).ok_or(DialogError::Malformed("From tag"))?,
                remote_tag: to_tag(response).ok_or(DialogError::Malformed("To tag"))?,
            },
            local_uri: uri_of(&from).ok_or(DialogError::Malformed("From"))?,
            remote_uri: uri_of(&to).ok_or(DialogError::Malformed("To"))?,
            local_party: from,
            remote_party: to,
            remote_target: contact_target(response)?,
            route_set,
            local_contact: contact_target(invite)?,
            local_cseq: cseq_number(invite).ok_or(DialogError::Malformed("CSeq"))?,
            remote_cseq: None,
        })
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }

    pub fn remote_target(&self) -> &rsip::Uri {
        &self.remote_target
    }

    /// Route header values in sending order.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    pub fn local_uri(&self) -> &str {
        &self.local_uri
    }

    pub fn remote_uri(&self) -> &str {
        &self.remote_uri
    }

    /// CSeq of the last request we sent in this dialog (0 on the UAS side before any).
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_cseq
    }

    /// Does this in-dialog request (BYE, re-INVITE, ACK, INFO...) belong here? Its From-tag
    /// is the peer's, its To-tag ours (§12.2.2).
    pub fn matches(&self, request: &rsip::Request) -> bool {
        call_id(request).as_deref() == Some(self.id.call_id.as_str())
            && from_tag(request).unwrap_or_default() == self.id.remote_tag
            && to_tag(request).as_deref() == Some(self.id.local_tag.as_str())
    }

    /// §12.2.2: a request with a CSeq lower than the last one from the peer is out of
    /// order (answer 500); otherwise remember it. ACK and CANCEL reuse the INVITE's number
    /// and are not checked.
    pub fn check_remote_cseq(&mut self, request: &rsip::Request) -> Result<(), DialogError> {
        if matches!(request.method, rsip::Method::Ack | rsip::Method::Cancel) {
            return Ok(());
        }
        let got = cseq_number(request).ok_or(DialogError::Malformed("CSeq"))?;
        match self.remote_cseq {
            Some(last) if got < last => Err(DialogError::CSeqOutOfOrder { got, last }),
            _ => {
                self.remote_cseq = Some(got);
                Ok(())
            }
        }
    }

    /// Target refresh (§12.2.1.2 / §12.2.2): a re-INVITE or UPDATE (or its 2xx) with a
    /// Contact replaces the remote target. Without a readable Contact nothing changes.
    pub fn refresh_remote_target(&mut self, message: &impl rsip::message::HasHeaders) {
        if let Ok(target) = contact_target(message) {
            self.remote_target = target;
        }
    }

    /// A new in-dialog request (BYE, INFO, re-INVITE...; ACK for a 2xx goes through
    /// [`Dialog::ack_for_2xx`]) with the next local CSeq, a fresh Via branch and
    /// Max-Forwards 70. Returns it with the next hop to send it to (first route, or the
    /// remote target when the route set is empty).
    pub fn new_request(
        &mut self,
        method: rsip::Method,
        via_host: &str,
        via_port: u16,
        transport: rsip::Transport,
    ) -> (rsip::Request, rsip::Uri) {
        self.local_cseq = self.local_cseq.saturating_add(1);
        let cseq = self.local_cseq;
        self.build(method, cseq, via_host, via_port, transport)
    }

    /// The ACK for a 2xx to our INVITE (§13.2.2.4): same CSeq number as the INVITE, method
    /// ACK, a new branch, routed like any in-dialog request.
    pub fn ack_for_2xx(
        &self,
        invite_cseq: u32,
        via_host: &str,
        via_port: u16,
        transport: rsip::Transport,
    ) -> (rsip::Request, rsip::Uri) {
        self.build(
            rsip::Method::Ack,
            invite_cseq,
            via_host,
            via_port,
            transport,
        )
    }

    /// §12.2.1.1: loose routing (first route has `lr`) keeps the remote target as
    /// Request-URI and sends to the first route; strict routing puts the first route in
    /// the Request-URI and the remote target at the end of the Route set.
    fn routing(&self) -> (rsip::Uri, Vec<String>, rsip::Uri) {
        let first = self
            .route_set
            .first()
            .and_then(|r| grammar::parse_name_addr(r).ok());
        let Some(first) = first else {
            return (
                self.remote_target.clone(),
                Vec::new(),
                self.remote_target.clone(),
            );
        };
        let Some(first_uri) = parse_uri(&first.uri) else {
            // An unreadable route: fall back to the remote target rather than misroute.
            return (
                self.remote_target.clone(),
                self.route_set.clone(),
                self.remote_target.clone(),
            );
        };
        if is_loose_router(&first_uri) {
            return (
                self.remote_target.clone(),
                self.route_set.clone(),
                first_uri,
            );
        }
        let mut routes: Vec<String> = self.route_set[1..].to_vec();
        routes.push(format!("<{}>", uri_to_string(&self.remote_target)));
        (first_uri.clone(), routes, first_uri)
    }

    fn build(
        &self,
        method: rsip::Method,
        cseq: u32,
        via_host: &str,
        via_port: u16,
        transport: rsip::Transport,
    ) -> (rsip::Request, rsip::Uri) {
        let (request_uri, routes, next_hop) = self.routing();
        let via = format!(
            "SIP/2.0/{transport} {}:{via_port};branch={};rport",
            grammar::host_text(via_host),
            message::new_branch()
        );
        let mut headers = vec![
            Header::Via(rsip::headers::Via::new(via)),
            Header::MaxForwards(rsip::headers::MaxForwards::new("70")),
        ];
        headers.extend(
            routes
                .into_iter()
                .map(|r| Header::Route(rsip::headers::Route::new(r))),
        );
        headers.push(Header::From(rsip::headers::From::new(
            self.local_party.clone(),
        )));
        headers.push(Header::To(rsip::headers::To::new(
            self.remote_party.clone(),
        )));
        headers.push(Header::CallId(rsip::headers::CallId::new(
            self.id.call_id.clone(),
        )));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{cseq} {method}"
        ))));
        let target_refresh = matches!(
            method,
            rsip::Method::Invite
                | rsip::Method::Update
                | rsip::Method::Subscribe
                | rsip::Method::Notify
                | rsip::Method::Refer
        );
        if target_refresh {
            headers.push(Header::Contact(rsip::headers::Contact::new(format!(
                "<{}>",
                uri_to_string(&self.local_contact)
            ))));
        }
        headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
            "0",
        )));
        let request = rsip::Request {
            method,
            uri: request_uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        (request, next_hop)
    }
}

/// Does this route URI carry `lr` (§19.1.1)? Its presence is what counts: older proxies
/// write `lr=on` (Kamailio's `enable_full_lr`), which rsip reads as an unknown parameter,
/// and taking such a proxy for a strict router would put its URI in our Request-URI.
fn is_loose_router(uri: &rsip::Uri) -> bool {
    uri.params.iter().any(|p| {
        let text = p.to_string();
        let name = text.trim_start_matches(';').split('=').next().unwrap_or("");
        name.trim().eq_ignore_ascii_case("lr")
    })
}

/// Record-Route values in message order, one per value (parse splits joined rows; rows
/// built elsewhere may still be joined, so split again).
fn record_routes(message: &impl rsip::message::HasHeaders) -> Vec<String> {
    header_values(message, "Record-Route")
        .iter()
        .flat_map(|row| {
            grammar::split_top_level(row, ',')
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Where an in-dialog request goes: IP addresses only (Contact/Record-Route of a trunk or
/// proxy); resolving names would block the caller of this function and is a
/// trunk-configuration matter.
pub fn uri_socket_addr(uri: &rsip::Uri) -> Option<std::net::SocketAddr> {
    let host = uri.host().to_string();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    let port = uri.port().map(|p| *p.value()).unwrap_or(5060);
    Some(std::net::SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests;
