//! Reaching a person (issue 14): the flow's `transfer` step, carried out.
//!
//! Bridge mode (the default; carriers seldom honour a REFER from the far end): the gateway
//! is a B2BUA. It INVITEs the target with its own G.711 offer and the call's context
//! ([`context`]), plays "connecting" and ringback to the caller meanwhile, and on answer
//! joins the two media sessions ([`crate::media::session::bridge`]). Either side's BYE ends
//! both legs. [`leg`] is that second leg, from INVITE to BYE.
//!
//! The manager owns the SIP endpoint's events: a leg registers its Call-ID with it (through
//! [`LegServices::register`]) and receives the responses to its requests and the
//! operator's in-dialog requests as [`LegEvent`]s; it sends through its own clone of the
//! endpoint handle. The call's limits count the leg as a call of its own while it lives.
//!
//! `hours` (see [`crate::config::TransferConfig::open_at`]) are checked inside the step:
//! outside them the step fails with `out_of_hours` and the flow takes its failure step.

pub mod context;
pub mod leg;
pub mod refer;

use crate::config::TransferConfig;
use crate::media::session::{PortPool, SessionConfig};
use crate::media::Codec;
use crate::sip::endpoint::EndpointHandle;
use crate::sip::transaction::TransactionKey;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the manager hands a leg.
#[derive(Debug)]
pub enum LegEvent {
    /// A response to one of the leg's requests.
    Response(TransactionKey, rsip::Response),
    /// One of the leg's requests got no answer (Timer B/F).
    Timeout(TransactionKey),
    /// A request from the operator's side (BYE, re-INVITE…), to answer.
    Request(TransactionKey, rsip::Request),
}

/// Registers (`Some`) or forgets (`None`) a leg's Call-ID with the manager.
pub type Register = Arc<dyn Fn(String, Option<mpsc::UnboundedSender<LegEvent>>) + Send + Sync>;

/// What a leg needs from the daemon.
#[derive(Clone)]
pub struct LegServices {
    pub endpoint: EndpointHandle,
    pub register: Register,
    pub ports: Arc<PortPool>,
    pub session: SessionConfig,
    /// Codecs we offer the target, in order.
    pub codecs: Vec<Codec>,
    /// Our address in SDP, Via and Contact.
    pub advertised_ip: IpAddr,
    pub config: TransferConfig,
    /// Transfers by outcome (metrics).
    pub counters: Arc<crate::call::stats::CallCounters>,
    /// Sends a REFER with this Refer-To in the caller's dialog (REFER mode); its answer and
    /// the NOTIFYs come back as [`crate::call::ivr::CallSignal`]s.
    pub refer: Option<Arc<dyn Fn(String) + Send + Sync>>,
}

/// How a transfer ended (the ticket's `transfer.outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Busy,
    NoAnswer,
    Failed,
    OutOfHours,
    Abandoned,
    Referred,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed => "failed",
            Outcome::OutOfHours => "out_of_hours",
            Outcome::Abandoned => "abandoned",
            Outcome::Referred => "referred",
        }
    }

    /// The outcome of a final refusal from the target.
    pub fn of_status(code: u16) -> Outcome {
        match code {
            486 | 600 | 603 => Outcome::Busy,
            408 | 480 => Outcome::NoAnswer,
            _ => Outcome::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn a_refusal_maps_to_busy_no_answer_or_failed() {
        assert_eq!(Outcome::of_status(486), Outcome::Busy);
        assert_eq!(Outcome::of_status(603), Outcome::Busy);
        assert_eq!(Outcome::of_status(480), Outcome::NoAnswer);
        assert_eq!(Outcome::of_status(404), Outcome::Failed);
        assert_eq!(Outcome::of_status(503), Outcome::Failed);
    }
}
