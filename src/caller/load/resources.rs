//! CPU time and resident memory of a process from `/proc` (Linux), sampled during a run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on every
/// Linux architecture this runs on).
const CLK_TCK: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ProcSample {
    /// User + system CPU time so far, seconds.
    pub cpu_secs: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Clone, Debug)]
pub struct ProcessProbe {
    dir: String,
}

impl ProcessProbe {
    pub fn pid(pid: u32) -> Self {
        ProcessProbe {
            dir: format!("/proc/{pid}"),
        }
    }

    pub fn this_process() -> Self {
        ProcessProbe {
            dir: "/proc/self".into(),
        }
    }

    /// `None` when the process is gone or `/proc` is not Linux's.
    pub fn sample(&self) -> Option<ProcSample> {
        let stat = std::fs::read_to_string(format!("{}/stat", self.dir)).ok()?;
        let status = std::fs::read_to_string(format!("{}/status", self.dir)).ok()?;
        Some(ProcSample {
            cpu_secs: parse_cpu_secs(&stat)?,
            rss_kib: parse_rss_kib(&status)?,
        })
    }
}

/// utime + stime (fields 14 and 15) of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may contain spaces, so fields are counted after its closing `)`.
fn parse_cpu_secs(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // after ")" come field 3 (state) onwards: utime is field 14 → index 11
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / CLK_TCK)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A reading taken during the run.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    pub at_secs: f64,
    pub active_calls: usize,
    pub gateway: Option<ProcSample>,
    pub load_generator: Option<ProcSample>,
}

/// Everything the sampler saw.
#[derive(Debug, Default)]
pub struct Samples {
    /// Before the first call.
    pub baseline: Option<Sample>,
    pub during: Vec<Sample>,
    pub load_average_start: Option<f64>,
    pub load_average_end: Option<f64>,
}

pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Samples>,
}

impl Sampler {
    /// Take a baseline now, then a sample every `every` until [`stop`](Self::stop).
    pub fn start(pid: Option<u32>, active: Arc<AtomicUsize>, every: Duration) -> Sampler {
        let gateway = pid.map(ProcessProbe::pid);
        let me = ProcessProbe::this_process();
        let start = Instant::now();
        let take = move |gateway: &Option<ProcessProbe>| Sample {
            at_secs: start.elapsed().as_secs_f64(),
            active_calls: active.load(Ordering::Relaxed),
            gateway: gateway.as_ref().and_then(ProcessProbe::sample),
            load_generator: me.sample(),
        };
        let mut samples = Samples {
            baseline: Some(take(&gateway)),
            load_average_start: load_average(),
            ..Samples::default()
        };
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => samples.during.push(take(&gateway)),
                    _ = &mut stopped => break,
                }
            }
            samples.during.push(take(&gateway));
            samples.load_average_end = load_average();
            samples
        });
        Sampler { stop, task }
    }

    pub async fn stop(self) -> Samples {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_command_name_containing_spaces_and_parens() {
        let stat = "1234 (hot (line) gw) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 100 123456789 2048 18446744073709551615";
        assert_eq!(parse_cpu_secs(stat), Some(3.25));
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\thotline\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(20480));
    }

    #[test]
    fn samples_this_process() {
        let s = ProcessProbe::this_process().sample().expect("/proc/self");
        assert!(s.rss_kib > 0);
        assert!(s.cpu_secs >= 0.0);
    }
}
