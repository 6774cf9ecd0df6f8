//! `hotline-gateway load`: many real calls over loopback, placed with the code of `dial`
//! (one shared SIP endpoint and RTP port pool, see [`Caller`]), to measure what the
//! gateway sustains: set-up latency and rate, completed calls, the pacing of the audio it
//! sends (inter-arrival intervals, jitter, loss per call) and, given its pid, its CPU and
//! resident memory.
//!
//! Bounded on purpose: a hard cap on calls, concurrency, rate and total run time, and the
//! target and local address must be loopback, so the tool cannot be pointed at a real trunk.

mod report;
mod resources;

use super::{Caller, DialError, DialOptions, DialReport};
use crate::media::prompt::Prompt;
use crate::media::Codec;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use report::{CallOutcome, LoadReport};
pub use resources::{ProcSample, ProcessProbe};

/// Hard limits of one run.
pub const MAX_CALLS: usize = 100_000;
pub const MAX_CONCURRENCY: usize = 5_000;
pub const MAX_RATE: f64 = 2_000.0;
pub const MAX_RUN_TIME: Duration = Duration::from_secs(3_600);

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// e.g. `sip:8890@127.0.0.1:5060`; must be a loopback address.
    pub target: String,
    /// Calls to place in total.
    pub calls: usize,
    /// Calls in progress at most.
    pub concurrency: usize,
    /// New calls per second (INVITEs are spaced evenly at this rate).
    pub rate: f64,
    /// Caller audio to speak after the digits (loaded once, shared by all calls).
    pub play: Option<PathBuf>,
    pub dtmf: String,
    pub dtmf_delay: Duration,
    pub speak_delay: Duration,
    pub end_digit: Option<char>,
    /// Each call hangs up itself after this long (if the gateway has not already).
    pub max_call_duration: Duration,
    /// The whole run stops after this long; calls still running are abandoned and counted.
    pub max_run_time: Duration,
    /// Local address for SIP and RTP; must be loopback.
    pub bind_ip: IpAddr,
    /// The callers' RTP ports (one even port per concurrent call).
    pub rtp_ports: (u16, u16),
    pub codecs: Vec<Codec>,
    /// The gateway's pid: sample its CPU time and RSS during the run.
    pub gateway_pid: Option<u32>,
    /// Sampling interval for CPU/RSS.
    pub sample_every: Duration,
    /// Digest credentials (user, password) for a trunk that challenges: every call answers
    /// its 401/407 exactly as `dial` does.
    pub auth: Option<(String, String)>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: "sip:8890@127.0.0.1:5060".into(),
            calls: 10,
            concurrency: 10,
            rate: 10.0,
            play: None,
            dtmf: "1".into(),
            dtmf_delay: Duration::from_secs(1),
            speak_delay: Duration::from_secs(8),
            end_digit: Some('#'),
            max_call_duration: Duration::from_secs(60),
            max_run_time: Duration::from_secs(600),
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            rtp_ports: (40000, 49999),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            gateway_pid: None,
            sample_every: Duration::from_millis(500),
            auth: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("refusing target {0}: the load tool only calls loopback addresses")]
    NotLoopback(String),
    #[error("bad target URI {0}")]
    Target(String),
    #[error("{0}")]
    OutOfBounds(String),
    #[error("cannot read audio to play: {0}")]
    Audio(String),
    #[error(transparent)]
    Dial(#[from] DialError),
}

/// Check the bounds and the loopback rule before anything is sent.
pub fn validate(opts: &LoadOptions) -> Result<(), LoadError> {
    let uri = rsip::Uri::try_from(opts.target.as_str())
        .map_err(|_| LoadError::Target(opts.target.clone()))?;
    let dest = crate::sip::dialog::uri_socket_addr(&uri)
        .ok_or_else(|| LoadError::Target(opts.target.clone()))?;
    if !dest.ip().is_loopback() {
        return Err(LoadError::NotLoopback(opts.target.clone()));
    }
    if !opts.bind_ip.is_loopback() {
        return Err(LoadError::NotLoopback(format!(
            "local address {}",
            opts.bind_ip
        )));
    }
    let bound = |ok: bool, what: String| {
        if ok {
            Ok(())
        } else {
            Err(LoadError::OutOfBounds(what))
        }
    };
    bound(
        (1..=MAX_CALLS).contains(&opts.calls),
        format!("--calls must be 1..={MAX_CALLS}"),
    )?;
    bound(
        (1..=MAX_CONCURRENCY).contains(&opts.concurrency),
        format!("--concurrency must be 1..={MAX_CONCURRENCY}"),
    )?;
    bound(
        opts.rate > 0.0 && opts.rate <= MAX_RATE,
        format!("--rate must be in (0, {MAX_RATE}]"),
    )?;
    bound(
        opts.max_run_time > Duration::ZERO && opts.max_run_time <= MAX_RUN_TIME,
        format!("--max-time must be at most {} s", MAX_RUN_TIME.as_secs()),
    )?;
    let (lo, hi) = opts.rtp_ports;
    let even_ports = if hi >= lo {
        usize::from(hi - lo) / 2 + 1
    } else {
        0
    };
    bound(
        even_ports >= opts.concurrency,
        format!(
            "RTP ports {lo}-{hi} hold {even_ports} calls, fewer than --concurrency {}",
            opts.concurrency
        ),
    )
}

/// Run the load and collect the report.
pub async fn run(opts: LoadOptions) -> Result<LoadReport, LoadError> {
    validate(&opts)?;
    let caller_audio = match &opts.play {
        Some(path) => Some(Arc::new(
            Prompt::from_wav_file(path).map_err(|e| LoadError::Audio(e.to_string()))?,
        )),
        None => None,
    };
    let caller = Arc::new(Caller::new(opts.bind_ip, opts.rtp_ports).await?);
    let dial = Arc::new(DialOptions {
        target: opts.target.clone(),
        bind_ip: opts.bind_ip,
        rtp_ports: opts.rtp_ports,
        codecs: opts.codecs.clone(),
        play: None,
        dtmf: opts.dtmf.clone(),
        dtmf_delay: opts.dtmf_delay,
        speak_delay: opts.speak_delay,
        end_digit: opts.end_digit,
        record: None,
        max_duration: opts.max_call_duration,
        verbose: false,
        auth: opts.auth.clone(),
        ..DialOptions::default()
    });

    let active = Arc::new(AtomicUsize::new(0));
    let sampler = resources::Sampler::start(opts.gateway_pid, active.clone(), opts.sample_every);
    let start = Instant::now();
    let deadline = start + opts.max_run_time;
    let slots = Arc::new(Semaphore::new(opts.concurrency));
    let mut calls = tokio::task::JoinSet::new();
    let mut not_started = 0usize;
    for i in 0..opts.calls {
        let at = start + Duration::from_secs_f64(i as f64 / opts.rate);
        if at >= deadline {
            not_started = opts.calls - i;
            break;
        }
        tokio::time::sleep_until(at).await;
        let permit = match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                not_started = opts.calls - i;
                break;
            }
        };
        let (caller, dial, audio, active) = (
            caller.clone(),
            dial.clone(),
            caller_audio.clone(),
            active.clone(),
        );
        let offset = start.elapsed();
        active.fetch_add(1, Ordering::Relaxed);
        calls.spawn(async move {
            let result = caller.call(&dial, audio, true).await;
            active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            (offset, start.elapsed(), result)
        });
    }
    let mut outcomes: Vec<(Duration, Duration, Result<DialReport, DialError>)> = Vec::new();
    let mut abandoned = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, calls.join_next()).await {
            Ok(Some(Ok(done))) => outcomes.push(done),
            Ok(Some(Err(_))) => abandoned += 1, // a panicked call task
            Ok(None) => break,
            Err(_) => {
                abandoned += calls.len();
                calls.abort_all();
                break;
            }
        }
    }
    let wall = start.elapsed();
    let samples = sampler.stop().await;
    if let Ok(c) = Arc::try_unwrap(caller) {
        c.shutdown();
    }
    Ok(report::build(
        &opts,
        outcomes,
        not_started,
        abandoned,
        wall,
        samples,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback_targets_and_local_addresses() {
        let mut o = LoadOptions {
            target: "sip:8890@192.0.2.1:5060".into(),
            ..LoadOptions::default()
        };
        assert!(matches!(validate(&o), Err(LoadError::NotLoopback(_))));
        o.target = "sip:8890@127.0.0.1:5060".into();
        assert!(validate(&o).is_ok());
        o.bind_ip = IpAddr::from([10, 0, 0, 1]);
        assert!(matches!(validate(&o), Err(LoadError::NotLoopback(_))));
        o.bind_ip = IpAddr::from([127, 0, 0, 1]);
        o.target = "sip:8890@127.0.0.2:5070".into(); // all of 127/8 is loopback
        assert!(validate(&o).is_ok());
    }

    #[test]
    fn refuses_runs_beyond_the_bounds() {
        let ok = LoadOptions::default();
        for bad in [
            LoadOptions {
                calls: MAX_CALLS + 1,
                ..ok.clone()
            },
            LoadOptions {
                calls: 0,
                ..ok.clone()
            },
            LoadOptions {
                concurrency: MAX_CONCURRENCY + 1,
                ..ok.clone()
            },
            LoadOptions {
                rate: 0.0,
                ..ok.clone()
            },
            LoadOptions {
                max_run_time: MAX_RUN_TIME * 2,
                ..ok.clone()
            },
            LoadOptions {
                concurrency: 100,
                rtp_ports: (40000, 40100), // 51 even ports
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(validate(&bad), Err(LoadError::OutOfBounds(_))),
                "{bad:?}"
            );
        }
    }
}
