//! Admission: whether a new INVITE may become a call, decided before any call state or RTP
//! port exists. The order is the answer's order: hop count, drain, trunk (ACL and digest,
//! so a stranger learns nothing about our numbers or load), number, the trunk's numbers,
//! content (§8.2.3), limits, and last the SDP offer.

use super::CallManager;
use crate::call::checks;
use crate::call::trunks::{Refusal, TrunkId};
use crate::config::NumberConfig;
use rsip::headers::UntypedHeader;
use rsip::prelude::HeadersExt;
use std::net::SocketAddr;

/// What an admitted INVITE brings to the call.
pub(super) struct Admitted {
    pub trunk: Option<TrunkId>,
    pub number: NumberConfig,
    /// The user part of the Request-URI.
    pub dialled: String,
    pub offer: String,
}

/// Why not.
pub(super) enum Refused {
    /// 401 with one `WWW-Authenticate` per algorithm.
    Challenge(Vec<String>),
    /// A final answer; `detail` goes into a Warning (empty: say nothing, as for a 403 to a
    /// stranger).
    Reject { code: u16, detail: &'static str },
}

fn reject(code: u16, detail: &'static str) -> Refused {
    Refused::Reject { code, detail }
}

impl CallManager {
    pub(super) fn admit(
        &mut self,
        req: &rsip::Request,
        source: SocketAddr,
    ) -> Result<Admitted, Refused> {
        let cfg = self.services.config.clone();
        if req
            .max_forwards_header()
            .ok()
            .and_then(|m| m.value().trim().parse::<u32>().ok())
            == Some(0)
        {
            return Err(reject(483, ""));
        }
        if self.draining {
            return Err(reject(503, "draining"));
        }
        // A message that cannot be stored must not be taken.
        if self
            .services
            .disk_low
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(reject(503, "storage full"));
        }
        let trunk = match self
            .trunks
            .identify(std::time::Instant::now(), source.ip(), req)
        {
            Ok(t) => t,
            Err(Refusal::Challenge(challenges)) => return Err(Refused::Challenge(challenges)),
            Err(Refusal::Forbidden(why)) => {
                tracing::info!(%source, why, "INVITE refused: 403");
                // No detail: a refused source learns nothing about the policy.
                return Err(reject(403, ""));
            }
            Err(Refusal::TrunkFull) => return Err(reject(503, "trunk call limit reached")),
        };
        let dialled = req.uri.user().unwrap_or_default().to_string();
        let Some(number) = cfg.number(&dialled).cloned() else {
            tracing::info!(%dialled, %source, "INVITE for a number we do not serve");
            return Err(reject(404, "number not served here"));
        };
        if !self.trunks.may_reach(trunk, &dialled) {
            tracing::info!(%dialled, trunk = trunk.map(|t| self.trunks.name(t)), "number not allowed for this trunk: 403");
            return Err(reject(403, "number not allowed for this trunk"));
        }
        if let Some((code, detail)) = checks::unacceptable_content(req) {
            return Err(reject(code, detail));
        }
        if self.at_limit() {
            tracing::warn!(limit = cfg.limits.max_calls, "call limit reached");
            return Err(reject(503, "call limit reached"));
        }
        if self.trunks.at_limit(trunk) {
            tracing::warn!(
                trunk = trunk.map(|t| self.trunks.name(t)),
                "trunk call limit reached"
            );
            return Err(reject(503, "trunk call limit reached"));
        }
        // `unacceptable_content` above has refused a body without readable SDP.
        let Ok(Some(offer)) = checks::sdp_offer(req) else {
            // Late offer (SDP in the ACK) is not supported yet; say so rather than fail later.
            return Err(reject(488, "no SDP offer (late offer is not supported)"));
        };
        Ok(Admitted {
            trunk,
            number,
            dialled,
            offer,
        })
    }
}
