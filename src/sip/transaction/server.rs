//! Server side of the layer: routing an incoming request to its transaction, and the
//! requests the layer answers itself (ACK absorption, CANCEL, merged requests).

use std::net::SocketAddr;
use std::time::Instant;

use super::key::{MessageIds, RequestId};
use super::schedule::Slot;
use super::server_invite::{self, AckDisposition, ServerInvite};
use super::server_non_invite::ServerNonInvite;
use super::{wire, Peer, TransactionEvent, TransactionKey, TransactionLayer, Transport};

pub(super) enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

pub(super) struct ServerEntry {
    /// Set for transactions whose request reached the TU: what merged-request detection and
    /// 2xx-ACK matching look up (the index entry is removed with the transaction).
    pub(super) request_id: Option<RequestId>,
    pub(super) machine: ServerMachine,
    /// Its place in the layer's schedule.
    pub(super) slot: Slot,
}

impl ServerEntry {
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        match &self.machine {
            ServerMachine::Invite(tx) => tx.next_timeout(),
            ServerMachine::NonInvite(tx) => tx.next_timeout(),
        }
    }

    pub(super) fn is_terminated(&self) -> bool {
        match &self.machine {
            ServerMachine::Invite(tx) => tx.is_terminated(),
            ServerMachine::NonInvite(tx) => tx.is_terminated(),
        }
    }
}

impl TransactionLayer {
    /// ACK: for a non-2xx it belongs to the INVITE transaction (same branch, §17.2.3); for a
    /// 2xx it has its own branch and is matched to the INVITE by dialog (Call-ID, From tag,
    /// CSeq number). The first ACK of a 2xx goes up; the rest are absorbed.
    pub(super) fn handle_ack(
        &mut self,
        now: Instant,
        ack: rsip::Request,
        ids: &MessageIds,
        source: SocketAddr,
        transport: Transport,
    ) {
        let invite_key = ids.key("INVITE");
        let by_dialog = || {
            let mut id = ids.request_id();
            id.method = "INVITE".to_string();
            id
        };
        let (disposition, touched) = match self.servers.get_mut(&invite_key) {
            Some(ServerEntry {
                machine: ServerMachine::Invite(tx),
                ..
            }) => (Some(tx.on_ack(now)), Some(invite_key)),
            _ => {
                let owner = self.by_request_id.get(&by_dialog()).cloned();
                match owner.as_ref().and_then(|key| self.servers.get_mut(key)) {
                    Some(ServerEntry {
                        machine: ServerMachine::Invite(tx),
                        ..
                    }) => (tx.on_dialog_ack(now), owner),
                    _ => (None, None),
                }
            }
        };
        if let Some(key) = touched {
            self.reschedule_server(&key);
        }
        match disposition {
            Some(AckDisposition::Absorb) => {}
            // No transaction knows it: a late ACK or one for a 2xx the layer no longer
            // tracks. The dialog layer decides; passing it up costs nothing.
            Some(AckDisposition::PassUp) | None => self.out.event(TransactionEvent::Request {
                key: ids.key("ACK"),
                request: ack,
                source,
                transport,
            }),
        }
    }

    /// CANCEL (§9.2): answered here, never passed to the TU as a request.
    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        cancel: &rsip::Request,
        ids: &MessageIds,
        destination: Peer,
    ) {
        let key = ids.key("CANCEL");
        if let Some(entry) = self.servers.get_mut(&key) {
            if let ServerMachine::NonInvite(tx) = &mut entry.machine {
                tx.on_retransmission(&mut self.out);
            }
            return;
        }
        let invite_key = ids.key("INVITE");
        let response = match self.servers.get_mut(&invite_key) {
            Some(ServerEntry {
                machine: ServerMachine::Invite(invite),
                ..
            }) => {
                let cancelled = invite.cancel(now, &mut self.out);
                let tag = invite.to_tag().map(str::to_string);
                self.reschedule_server(&invite_key);
                if cancelled {
                    self.out
                        .event(TransactionEvent::Cancelled { invite: invite_key });
                }
                wire::response_to(cancel, 200, "OK", tag.as_deref())
            }
            _ => wire::response_to(
                cancel,
                481,
                "Call/Transaction Does Not Exist",
                Some(&server_invite::new_tag()),
            ),
        };
        let tx = ServerNonInvite::answered(now, destination, &response, self.config, &mut self.out);
        self.servers.insert(
            key.clone(),
            ServerEntry {
                request_id: None,
                machine: ServerMachine::NonInvite(tx),
                slot: Slot::default(),
            },
        );
        self.reschedule_server(&key);
    }

    pub(super) fn handle_new_or_retransmitted(
        &mut self,
        now: Instant,
        request: rsip::Request,
        ids: &MessageIds,
        destination: Peer,
        source: SocketAddr,
    ) {
        let method = request.method.to_string();
        let key = ids.key(&method);
        if let Some(entry) = self.servers.get_mut(&key) {
            match &mut entry.machine {
                ServerMachine::Invite(tx) => tx.on_retransmission(&mut self.out),
                ServerMachine::NonInvite(tx) => tx.on_retransmission(&mut self.out),
            }
            return;
        }
        let is_invite = request.method == rsip::Method::Invite;
        let request_id = ids.request_id();
        // §8.2.2.2: same From tag, Call-ID and CSeq as a live transaction but another
        // branch: the request reached us twice through a forking proxy. Refuse the copy.
        let merged = ids.to_tag.is_none()
            && self
                .by_request_id
                .get(&request_id)
                .is_some_and(|owner| *owner != key && self.servers.contains_key(owner));
        if merged {
            tracing::debug!(?key, "merged request: 482");
            let machine = if is_invite {
                ServerMachine::Invite(ServerInvite::rejected(
                    now,
                    request,
                    destination,
                    482,
                    "Loop Detected",
                    self.config,
                    &mut self.out,
                ))
            } else {
                let tag = server_invite::new_tag();
                let response = wire::response_to(&request, 482, "Loop Detected", Some(&tag));
                ServerMachine::NonInvite(ServerNonInvite::answered(
                    now,
                    destination,
                    &response,
                    self.config,
                    &mut self.out,
                ))
            };
            let entry = ServerEntry {
                request_id: None,
                machine,
                slot: Slot::default(),
            };
            self.servers.insert(key.clone(), entry);
            self.reschedule_server(&key);
            return;
        }
        let machine = if is_invite {
            ServerMachine::Invite(ServerInvite::new(
                request.clone(),
                destination,
                self.config,
                &mut self.out,
            ))
        } else {
            ServerMachine::NonInvite(ServerNonInvite::new(destination, self.config))
        };
        self.by_request_id.insert(request_id.clone(), key.clone());
        let entry = ServerEntry {
            request_id: Some(request_id),
            machine,
            slot: Slot::default(),
        };
        self.servers.insert(key.clone(), entry);
        self.reschedule_server(&key);
        self.out.event(TransactionEvent::Request {
            key,
            request,
            source,
            transport: destination.transport,
        });
    }

    pub(super) fn remove_server(&mut self, key: &TransactionKey) {
        if let Some(ServerEntry {
            request_id: Some(id),
            ..
        }) = self.servers.remove(key)
        {
            if self.by_request_id.get(&id) == Some(key) {
                self.by_request_id.remove(&id);
            }
        }
    }
}
