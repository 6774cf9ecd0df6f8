//! The figures a load run produces, as a table for people and JSON for scripts.

use super::resources::{Sample, Samples};
use super::LoadOptions;
use crate::caller::{DialError, DialReport};
use crate::media::session::ArrivalStats;
use crate::media::PTIME;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Pacing tolerance the targets use: an interval within 20 ± 2 ms is on time.
const TOLERANCE: Duration = Duration::from_millis(2);

/// How one call ended, as the report counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Answered; the gateway ended the call (the IVR ran to its end).
    CompletedByGateway,
    /// Answered; we hung up (at `max_call_duration`, or after the RTP timeout).
    HungUpByCaller,
    /// A final non-2xx response.
    Rejected,
    /// No final response, or the call could not be placed.
    Failed,
}

/// Milliseconds at the usual percentiles.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut v: Vec<Duration>) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort();
        let at = |q: f64| {
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            ms(v[i])
        };
        Percentiles {
            count: v.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: ms(v[v.len() - 1]),
        }
    }
}

/// Pacing of the gateway's audio as the callers received it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Pacing {
    /// Calls that received audio.
    pub calls: usize,
    pub packets: u64,
    pub intervals: u64,
    /// Over every interval of every call.
    pub interval_p50_ms: f64,
    pub interval_p99_ms: f64,
    pub interval_p999_ms: f64,
    pub interval_max_ms: f64,
    /// Intervals outside 20 ± 2 ms, and their share.
    pub intervals_off_2ms: u64,
    pub intervals_off_2ms_ratio: f64,
    /// Per-call p99 interval: median call and worst call.
    pub per_call_p99_median_ms: f64,
    pub per_call_p99_worst_ms: f64,
    /// Per-call largest interval (a gap): median call and worst call.
    pub per_call_max_median_ms: f64,
    pub per_call_max_worst_ms: f64,
    /// Packets missing by sequence number, over all calls.
    pub lost: u64,
    /// 20 ms frames the gateway's pacer skipped (RTP timestamp jumps, sequence contiguous).
    pub skipped_frames: u64,
    pub out_of_order: u64,
    /// RFC 3550 interarrival jitter: median call at its end, worst value seen in any call.
    pub jitter_median_ms: f64,
    pub jitter_worst_ms: f64,
}

/// CPU and memory of one process over the run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProcessUsage {
    /// CPU seconds used during the run.
    pub cpu_secs: f64,
    /// Average share of one core during the run (200 % = both cores of this machine).
    pub cpu_percent_of_core: f64,
    pub rss_baseline_kib: u64,
    pub rss_peak_kib: u64,
    /// (RSS − baseline) / active calls at the sample with the most active calls.
    pub rss_per_active_call_kib: Option<f64>,
    pub active_calls_at_that_sample: usize,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadReport {
    pub target: String,
    pub calls_requested: usize,
    pub concurrency_limit: usize,
    pub rate_offered_per_sec: f64,
    pub wall_secs: f64,
    pub calls_placed: usize,
    pub calls_not_started: usize,
    /// Still running when the run's time ran out.
    pub calls_abandoned: usize,
    pub answered: usize,
    pub completed_by_gateway: usize,
    pub hung_up_by_caller: usize,
    /// Final status → count, for calls not answered with 200.
    pub rejected_by_status: BTreeMap<u16, usize>,
    /// Error text → count, for calls without any final response.
    pub failures: BTreeMap<String, usize>,
    /// INVITE → final response, answered calls.
    pub setup_latency: Percentiles,
    /// Answered calls per second between the first INVITE and the last 200 OK.
    pub setup_rate_per_sec: f64,
    pub peak_active_calls: usize,
    pub rtp_packets_received: u64,
    pub rtp_packets_sent: u64,
    pub pacing: Pacing,
    pub gateway: Option<ProcessUsage>,
    pub load_generator: Option<ProcessUsage>,
    pub load_average_start: Option<f64>,
    pub load_average_end: Option<f64>,
}

type Outcome = (Duration, Duration, Result<DialReport, DialError>);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

pub(super) fn build(
    opts: &LoadOptions,
    outcomes: Vec<Outcome>,
    not_started: usize,
    abandoned: usize,
    wall: Duration,
    samples: Samples,
) -> LoadReport {
    let mut r = LoadReport {
        target: opts.target.clone(),
        calls_requested: opts.calls,
        concurrency_limit: opts.concurrency,
        rate_offered_per_sec: opts.rate,
        wall_secs: wall.as_secs_f64(),
        calls_placed: outcomes.len() + abandoned,
        calls_not_started: not_started,
        calls_abandoned: abandoned,
        load_average_start: samples.load_average_start,
        load_average_end: samples.load_average_end,
        ..LoadReport::default()
    };
    let mut setups = Vec::new();
    let mut first_invite: Option<Duration> = None;
    let mut last_answer: Option<Duration> = None;
    let mut all = ArrivalStats::new();
    let (mut p99s, mut maxes, mut jitters) = (Vec::new(), Vec::new(), Vec::new());
    for (offset, _ended, result) in outcomes {
        first_invite = Some(first_invite.map_or(offset, |f| f.min(offset)));
        let report = match result {
            Ok(rep) => rep,
            Err(e) => {
                *r.failures.entry(e.to_string()).or_default() += 1;
                continue;
            }
        };
        r.rtp_packets_received += report.packets_received;
        r.rtp_packets_sent += report.packets_sent;
        match outcome_of(&report) {
            CallOutcome::Rejected => {
                *r.rejected_by_status.entry(report.status).or_default() += 1;
                continue;
            }
            CallOutcome::Failed => {
                *r.failures.entry("no final response".into()).or_default() += 1;
                continue;
            }
            CallOutcome::CompletedByGateway => r.completed_by_gateway += 1,
            CallOutcome::HungUpByCaller => r.hung_up_by_caller += 1,
        }
        r.answered += 1;
        setups.push(report.setup);
        let answered_at = offset + report.setup;
        last_answer = Some(last_answer.map_or(answered_at, |l| l.max(answered_at)));
        if let Some(a) = &report.arrivals {
            if a.intervals() > 0 {
                p99s.push(a.interval_quantile(0.99).map_or(0.0, ms));
                maxes.push(ms(a.max_interval));
                jitters.push(a.jitter_us / 1000.0);
                r.pacing.calls += 1;
            }
            all.merge(a);
        }
    }
    r.setup_latency = Percentiles::of(setups);
    if let (Some(f), Some(l)) = (first_invite, last_answer) {
        let span = l.saturating_sub(f).as_secs_f64();
        if span > 0.0 {
            r.setup_rate_per_sec = r.answered as f64 / span;
        }
    }
    let q = |q: f64| all.interval_quantile(q).map_or(0.0, ms);
    let off = all.intervals_outside(PTIME, TOLERANCE);
    r.pacing = Pacing {
        packets: all.packets,
        intervals: all.intervals(),
        interval_p50_ms: q(0.5),
        interval_p99_ms: q(0.99),
        interval_p999_ms: q(0.999),
        interval_max_ms: ms(all.max_interval),
        intervals_off_2ms: off,
        intervals_off_2ms_ratio: if all.intervals() > 0 {
            off as f64 / all.intervals() as f64
        } else {
            0.0
        },
        per_call_p99_median_ms: median(p99s.clone()),
        per_call_p99_worst_ms: p99s.iter().copied().fold(0.0, f64::max),
        per_call_max_median_ms: median(maxes.clone()),
        per_call_max_worst_ms: maxes.iter().copied().fold(0.0, f64::max),
        lost: all.lost,
        skipped_frames: all.skipped_frames,
        out_of_order: all.out_of_order,
        jitter_median_ms: median(jitters),
        jitter_worst_ms: all.max_jitter_us / 1000.0,
        ..r.pacing
    };
    r.peak_active_calls = samples
        .during
        .iter()
        .map(|s| s.active_calls)
        .max()
        .unwrap_or(0);
    r.gateway = usage(&samples, |s| s.gateway);
    r.load_generator = usage(&samples, |s| s.load_generator);
    r
}

fn outcome_of(report: &DialReport) -> CallOutcome {
    match report.status {
        200 if report.hung_up_by == Some("gateway") => CallOutcome::CompletedByGateway,
        200 => CallOutcome::HungUpByCaller,
        0 => CallOutcome::Failed,
        _ => CallOutcome::Rejected,
    }
}

fn usage(
    samples: &Samples,
    pick: impl Fn(&Sample) -> Option<super::ProcSample>,
) -> Option<ProcessUsage> {
    let base_sample = samples.baseline.as_ref()?;
    let base = pick(base_sample)?;
    let readings: Vec<(&Sample, super::ProcSample)> = samples
        .during
        .iter()
        .filter_map(|s| pick(s).map(|p| (s, p)))
        .collect();
    let (last_sample, last) = readings.last()?;
    let secs = last_sample.at_secs - base_sample.at_secs;
    let cpu = last.cpu_secs - base.cpu_secs;
    let busiest = readings
        .iter()
        .max_by_key(|(s, p)| (s.active_calls, p.rss_kib))?;
    let per_call = (busiest.0.active_calls > 0)
        .then(|| (busiest.1.rss_kib as f64 - base.rss_kib as f64) / busiest.0.active_calls as f64);
    Some(ProcessUsage {
        cpu_secs: cpu,
        cpu_percent_of_core: if secs > 0.0 { 100.0 * cpu / secs } else { 0.0 },
        rss_baseline_kib: base.rss_kib,
        rss_peak_kib: readings.iter().map(|(_, p)| p.rss_kib).max().unwrap_or(0),
        rss_per_active_call_kib: per_call,
        active_calls_at_that_sample: busiest.0.active_calls,
    })
}

impl LoadReport {
    /// The report as an aligned text table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "{k:<34} {v}");
        };
        row("target", self.target.clone());
        row(
            "offered",
            format!(
                "{} calls, {:.0}/s, at most {} at once",
                self.calls_requested, self.rate_offered_per_sec, self.concurrency_limit
            ),
        );
        row("wall time", format!("{:.1} s", self.wall_secs));
        row(
            "placed / not started / abandoned",
            format!(
                "{} / {} / {}",
                self.calls_placed, self.calls_not_started, self.calls_abandoned
            ),
        );
        row(
            "answered (200)",
            format!(
                "{} (completed by gateway {}, hung up by caller {})",
                self.answered, self.completed_by_gateway, self.hung_up_by_caller
            ),
        );
        row("rejected", format!("{:?}", self.rejected_by_status));
        row("failed", format!("{:?}", self.failures));
        let s = &self.setup_latency;
        row(
            "set-up INVITE->200 ms",
            format!(
                "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            ),
        );
        row(
            "set-up rate achieved",
            format!("{:.1} calls/s", self.setup_rate_per_sec),
        );
        row("peak active calls", self.peak_active_calls.to_string());
        row(
            "RTP packets received / sent",
            format!("{} / {}", self.rtp_packets_received, self.rtp_packets_sent),
        );
        let p = &self.pacing;
        row(
            "gateway audio interval ms",
            format!(
                "p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} intervals, {} calls)",
                p.interval_p50_ms,
                p.interval_p99_ms,
                p.interval_p999_ms,
                p.interval_max_ms,
                p.intervals,
                p.calls
            ),
        );
        row(
            "  outside 20±2 ms",
            format!(
                "{} ({:.3} %)",
                p.intervals_off_2ms,
                100.0 * p.intervals_off_2ms_ratio
            ),
        );
        row(
            "  per-call p99 (median/worst)",
            format!(
                "{:.1} / {:.1} ms",
                p.per_call_p99_median_ms, p.per_call_p99_worst_ms
            ),
        );
        row(
            "  per-call max gap (median/worst)",
            format!(
                "{:.1} / {:.1} ms",
                p.per_call_max_median_ms, p.per_call_max_worst_ms
            ),
        );
        row(
            "  lost / skipped / out of order",
            format!("{} / {} / {}", p.lost, p.skipped_frames, p.out_of_order),
        );
        row(
            "  RFC 3550 jitter (median/worst)",
            format!("{:.2} / {:.2} ms", p.jitter_median_ms, p.jitter_worst_ms),
        );
        for (name, u) in [
            ("gateway", &self.gateway),
            ("load generator", &self.load_generator),
        ] {
            if let Some(u) = u {
                row(
                    &format!("{name} CPU"),
                    format!(
                        "{:.1} s, {:.0} % of one core",
                        u.cpu_secs, u.cpu_percent_of_core
                    ),
                );
                let per_call = u
                    .rss_per_active_call_kib
                    .map_or("-".into(), |k| format!("{k:.0} KiB"));
                row(
                    &format!("{name} RSS"),
                    format!(
                        "baseline {} KiB, peak {} KiB, per active call {} (at {} calls)",
                        u.rss_baseline_kib, u.rss_peak_kib, per_call, u.active_calls_at_that_sample
                    ),
                );
            }
        }
        row(
            "load average start / end",
            format!(
                "{} / {}",
                self.load_average_start
                    .map_or("-".into(), |l| format!("{l:.2}")),
                self.load_average_end
                    .map_or("-".into(), |l| format!("{l:.2}"))
            ),
        );
        t
    }
}
