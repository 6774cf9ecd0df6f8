//! The metrics registry and the Prometheus text exposition (format 0.0.4), written by hand.
//!
//! Why by hand rather than `prometheus-client`: every number we export already lives in an
//! atomic or a fixed table owned by the layer that counts it (the SIP endpoint, the call
//! manager, media sessions, the ticket service), so that counting on the hot path costs one
//! relaxed add and never a lock, a label-set hash or an allocation. A client library would
//! want its own metric objects (label families behind a lock); here the registry only *reads*
//! the counters when scraped, and the text format is a few lines of code.
//!
//! A [`MetricSource`] writes one or more metric families; the [`Registry`] holds the sources.
//! Adding a counter source is one line: `registry.register(Arc::new(source))`, where the
//! source is any type implementing `MetricSource` or a closure `Fn(&mut Exposition)`.

use crate::call::manager::CallCounters;
use crate::media::stats::MediaCounters;
use crate::sip::endpoint::EndpointCounters;
use crate::ticket::{DeliveryState, TicketService};
use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that contributes metric families to a scrape.
pub trait MetricSource: Send + Sync {
    fn collect(&self, out: &mut Exposition);
}

impl<F: Fn(&mut Exposition) + Send + Sync> MetricSource for F {
    fn collect(&self, out: &mut Exposition) {
        self(out)
    }
}

/// The sources a scrape reads, in order.
#[derive(Default, Clone)]
pub struct Registry {
    sources: Vec<Arc<dyn MetricSource>>,
}

impl Registry {
    pub fn register(&mut self, source: Arc<dyn MetricSource>) {
        self.sources.push(source);
    }

    /// The whole exposition. May block briefly (the ticket source reads SQLite): call it
    /// from a blocking thread.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        for s in &self.sources {
            s.collect(&mut out);
        }
        out.text
    }
}

/// Prometheus text being written. Each family is written whole (HELP, TYPE, samples), as
/// the format requires.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    /// Start a family: `kind` is `counter`, `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn counter(&mut self, name: &str, help: &str, c: &AtomicU64) {
        self.single(name, "counter", help, c.load(Ordering::Relaxed));
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.single(name, "gauge", help, value);
    }
}

/// SIP transport and message counters.
pub struct SipSource(pub Arc<EndpointCounters>);

impl MetricSource for SipSource {
    fn collect(&self, out: &mut Exposition) {
        let c = &self.0;
        let n = "hotline_sip_requests_total";
        out.family(
            n,
            "counter",
            "SIP requests by direction and method (retransmissions included).",
        );
        for (dir, method, count) in c.messages.requests() {
            out.sample(n, &[("direction", dir.as_str()), ("method", method)], count);
        }
        let n = "hotline_sip_responses_total";
        out.family(
            n,
            "counter",
            "SIP responses by direction, CSeq method and status code.",
        );
        for (dir, method, code, count) in c.messages.responses() {
            let code = code.to_string();
            out.sample(
                n,
                &[
                    ("direction", dir.as_str()),
                    ("method", method),
                    ("code", &code),
                ],
                count,
            );
        }
        let n = "hotline_sip_datagrams_total";
        out.family(n, "counter", "UDP datagrams on the SIP socket.");
        out.sample(
            n,
            &[("direction", "in")],
            c.datagrams_in.load(Ordering::Relaxed),
        );
        out.sample(
            n,
            &[("direction", "out")],
            c.datagrams_out.load(Ordering::Relaxed),
        );
        out.counter(
            "hotline_sip_datagrams_dropped_total",
            "Datagrams dropped silently (not SIP, or a broken response).",
            &c.dropped,
        );
        out.counter(
            "hotline_sip_datagrams_rejected_total",
            "Broken requests answered statelessly with 400 or 501.",
            &c.rejected,
        );
        out.counter(
            "hotline_sip_send_errors_total",
            "SIP sends that failed.",
            &c.send_errors,
        );
        out.counter(
            "hotline_sip_tcp_refused_total",
            "TCP connections closed at accept (over a limit, or refused by the guard).",
            &c.tcp_refused,
        );
        out.counter(
            "hotline_sip_tcp_timeouts_total",
            "TCP connections closed for sending no complete message in time.",
            &c.tcp_timeouts,
        );
        out.counter(
            "hotline_sip_overload_refused_total",
            "Requests answered 503 by the endpoint because the call manager was behind.",
            &c.overload_refused,
        );
    }
}

/// Calls by outcome.
pub struct CallSource(pub Arc<CallCounters>);

impl MetricSource for CallSource {
    fn collect(&self, out: &mut Exposition) {
        let c = &self.0;
        out.counter(
            "hotline_calls_answered_total",
            "Calls answered (200 OK to an INVITE).",
            &c.answered,
        );
        let n = "hotline_calls_rejected_total";
        out.family(n, "counter", "INVITEs refused, by SIP status code.");
        for (code, count) in c.rejected_by_code() {
            out.sample(n, &[("code", &code.to_string())], count);
        }
        let n = "hotline_calls_ended_total";
        out.family(
            n,
            "counter",
            "Answered calls that ended, by hang-up reason of the call record.",
        );
        for (reason, count) in c.ended_by_reason() {
            out.sample(n, &[("reason", reason)], count);
        }
        out.gauge(
            "hotline_calls_active",
            "Calls in progress.",
            c.active.load(Ordering::Relaxed),
        );
        let n = "hotline_bye_failures_total";
        out.family(
            n,
            "counter",
            "Our BYEs that failed (auth: 401/407, refused, timeout); the calls ended anyway.",
        );
        for (why, count) in c.bye_failures() {
            out.sample(n, &[("reason", why)], count);
        }
        let n = "hotline_transfers_total";
        out.family(n, "counter", "Transfers to a person, by outcome.");
        for (outcome, count) in c.transfers_by_outcome() {
            out.sample(n, &[("outcome", outcome)], count);
        }
    }
}

/// What the SIP guard let through or dropped, and bans.
pub struct GuardSource(pub Arc<crate::sip::guard::GuardCounters>);

impl MetricSource for GuardSource {
    fn collect(&self, out: &mut Exposition) {
        let g = &self.0;
        out.counter(
            "hotline_guard_passed_total",
            "SIP messages the guard let through to parsing.",
            &g.passed,
        );
        let n = "hotline_guard_dropped_total";
        out.family(n, "counter", "SIP messages the guard dropped, by reason.");
        for (reason, c) in [
            ("banned", &g.dropped_banned),
            ("rate", &g.dropped_rate),
            ("unknown_source", &g.dropped_unknown_source),
            ("scanner", &g.dropped_scanner),
            ("throttled", &g.throttled),
        ] {
            out.sample(n, &[("reason", reason)], c.load(Ordering::Relaxed));
        }
        out.counter("hotline_guard_bans_total", "Sources banned.", &g.bans);
        out.gauge(
            "hotline_guard_banned_sources",
            "Sources banned right now.",
            g.banned_now.load(Ordering::Relaxed),
        );
    }
}

/// RTP, pacing and recordings.
pub struct MediaSource(pub Arc<MediaCounters>);

impl MetricSource for MediaSource {
    fn collect(&self, out: &mut Exposition) {
        let c = &self.0;
        let n = "hotline_rtp_packets_total";
        out.family(
            n,
            "counter",
            "RTP packets: accepted from callers (in) and sent (out).",
        );
        out.sample(
            n,
            &[("direction", "in")],
            c.packets_in.load(Ordering::Relaxed),
        );
        out.sample(
            n,
            &[("direction", "out")],
            c.packets_out.load(Ordering::Relaxed),
        );
        out.counter(
            "hotline_rtp_packets_dropped_total",
            "Incoming RTP dropped: malformed, unexpected payload type, or wrong source.",
            &c.packets_dropped,
        );
        out.counter(
            "hotline_rtp_packets_wrong_source_total",
            "Incoming RTP dropped because it came from another source than the caller's (strict source; included in hotline_rtp_packets_dropped_total).",
            &c.packets_wrong_source,
        );
        out.counter(
            "hotline_rtp_sources_relearned_total",
            "RTP sources re-learnt after the caller's fell silent and a new one passed probation.",
            &c.sources_relearned,
        );
        out.counter(
            "hotline_rtp_packets_lost_total",
            "Incoming RTP missing by sequence number.",
            &c.packets_lost,
        );
        out.counter(
            "hotline_rtp_send_errors_total",
            "RTP sends that failed (frame lost).",
            &c.send_errors,
        );
        out.counter(
            "hotline_rtp_frames_skipped_total",
            "Outgoing 20 ms frames skipped because the media task woke up more than a frame late.",
            &c.frames_skipped,
        );
        let n = "hotline_rtp_pacing_lateness_seconds";
        out.family(
            n,
            "histogram",
            "How late each 20 ms send tick ran after its deadline.",
        );
        let (buckets, count, sum_us) = c.lateness.snapshot();
        let bucket = format!("{n}_bucket");
        for (bound, cumulative) in buckets {
            let le = bound.map_or_else(|| "+Inf".to_string(), seconds);
            out.sample(&bucket, &[("le", &le)], cumulative);
        }
        out.sample(&format!("{n}_sum"), &[], seconds(sum_us));
        out.sample(&format!("{n}_count"), &[], count);
        out.gauge(
            "hotline_media_sessions_active",
            "RTP sessions running.",
            c.sessions_active.load(Ordering::Relaxed),
        );
        out.counter(
            "hotline_recordings_written_total",
            "Callers' messages written as WAV.",
            &c.recordings_written,
        );
        out.counter(
            "hotline_recording_errors_total",
            "Messages that could not be written.",
            &c.recording_errors,
        );
    }
}

/// Microseconds as decimal seconds, exactly (no float rounding in bucket bounds).
fn seconds(us: u64) -> String {
    let frac = us % 1_000_000;
    if frac == 0 {
        return (us / 1_000_000).to_string();
    }
    let s = format!("{}.{:06}", us / 1_000_000, frac);
    s.trim_end_matches('0').to_string()
}

/// Ticket store depth (read from SQLite at scrape time) and delivery outcomes.
pub struct TicketSource(pub TicketService);

impl MetricSource for TicketSource {
    fn collect(&self, out: &mut Exposition) {
        let n = "hotline_tickets";
        out.family(n, "gauge", "Tickets in the store by delivery state.");
        match self.0.store().counts() {
            Ok(counts) => {
                for state in [
                    DeliveryState::Pending,
                    DeliveryState::InFlight,
                    DeliveryState::Delivered,
                    DeliveryState::Dead,
                ] {
                    let v = counts
                        .iter()
                        .find(|(s, _)| *s == state)
                        .map_or(0, |(_, n)| *n);
                    out.sample(n, &[("state", state.as_str())], v);
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count tickets"),
        }
        let c = self.0.counters();
        out.counter(
            "hotline_tickets_created_total",
            "Tickets committed since start.",
            &c.created,
        );
        out.counter(
            "hotline_tickets_revised_total",
            "Tickets given a better transcript by a message's second pass since start.",
            &c.revised,
        );
        let n = "hotline_ticket_deliveries_total";
        out.family(
            n,
            "counter",
            "Delivery attempts to the intake API by outcome.",
        );
        for (outcome, v) in [
            ("delivered", &c.delivered),
            ("retry", &c.retried),
            ("dead", &c.dead),
        ] {
            out.sample(n, &[("outcome", outcome)], v.load(Ordering::Relaxed));
        }
        out.counter(
            "hotline_ticket_outbox_files_total",
            "Ticket files written to the outbox folder (no intake URL).",
            &c.outbox_written,
        );
        out.counter(
            "hotline_ticket_store_errors_total",
            "Ticket store operations that failed (busy, disk full, I/O) and were retried.",
            &c.store_errors,
        );
        out.gauge(
            "hotline_ticket_store_failing",
            "1 while the ticket store fails: tickets wait, /readyz says 503.",
            u8::from(c.store_failing.load(Ordering::Relaxed)),
        );
        out.counter(
            "hotline_ticket_intake_misconfigured_total",
            "Attempts the intake answered 401, 403, 404, 3xx or another configuration problem (retried).",
            &c.intake_misconfigured,
        );
        out.gauge(
            "hotline_ticket_intake_misconfigured",
            "1 while the intake's last answer was a configuration problem: alert on it.",
            u8::from(c.intake_failing.load(Ordering::Relaxed)),
        );
        if let Some(f) = self.0.fleet() {
            fleet_metrics(out, &f.counters, self.0.store().unmoved_count().ok());
        }
    }
}

/// The fleet's shared store (`[tickets] store = "postgres"`): its outage is an alert, not a
/// readiness failure (tickets wait in the local store and move when it is back).
fn fleet_metrics(
    out: &mut Exposition,
    f: &crate::ticket::fleet::FleetCounters,
    waiting: Option<u64>,
) {
    out.gauge(
        "hotline_fleet_store_up",
        "0 while the fleet's shared ticket store is unreachable: alert on it (calls are still taken).",
        u8::from(!f.down.load(Ordering::Relaxed)),
    );
    out.counter(
        "hotline_fleet_store_errors_total",
        "Failed operations on the fleet's shared ticket store (each retried).",
        &f.errors,
    );
    out.counter(
        "hotline_fleet_tickets_moved_total",
        "Tickets this instance moved from its local store to the shared one.",
        &f.moved,
    );
    out.counter(
        "hotline_fleet_duplicates_total",
        "Moved tickets the fleet-wide look-up found to repeat another instance's ticket.",
        &f.fleet_duplicates,
    );
    if let Some(n) = waiting {
        out.gauge(
            "hotline_fleet_tickets_waiting",
            "Committed tickets still to move to the shared store.",
            n,
        );
    }
}

impl crate::admin::ReadinessCheck for TicketSource {
    fn not_ready(&self) -> Option<&'static str> {
        self.0
            .counters()
            .store_failing
            .load(Ordering::Relaxed)
            .then_some("ticket store failing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_whole_with_escaped_labels() {
        let mut r = Registry::default();
        let c = Arc::new(AtomicU64::new(3));
        let c2 = c.clone();
        r.register(Arc::new(move |out: &mut Exposition| {
            out.counter("x_total", "An x.", &c2);
            out.family("y", "gauge", "A y.");
            out.sample("y", &[("k", "a\"b\\c"), ("l", "m")], 1.5);
        }));
        c.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            r.render(),
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total 4\n\
             # HELP y A y.\n# TYPE y gauge\ny{k=\"a\\\"b\\\\c\",l=\"m\"} 1.5\n"
        );
    }

    #[test]
    fn histogram_bounds_are_exact_seconds() {
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(20_000), "0.02");
        assert_eq!(seconds(2_000_000), "2");
        assert_eq!(seconds(1_500_000), "1.5");
        let m = Arc::new(MediaCounters::default());
        m.lateness.observe(std::time::Duration::from_micros(300));
        let mut out = Exposition::default();
        MediaSource(m).collect(&mut out);
        let text = out.text;
        assert!(text.contains("hotline_rtp_pacing_lateness_seconds_bucket{le=\"0.00025\"} 0\n"));
        assert!(text.contains("hotline_rtp_pacing_lateness_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("hotline_rtp_pacing_lateness_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("hotline_rtp_pacing_lateness_seconds_sum 0.0003\n"));
        assert!(text.contains("hotline_rtp_pacing_lateness_seconds_count 1\n"));
    }
}
