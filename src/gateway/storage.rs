//! Keeping the data directory within bounds (issue 11.17).
//!
//! Two jobs, one background task: the free-space guard (below `[storage] min_free_mb` new
//! INVITEs get 503: a message that cannot be stored must not be taken; the manager reads one
//! shared flag, so admission costs an atomic load), and retention (`[storage]
//! retention_days`: recordings, call records and outbox files of delivered tickets older than
//! that are deleted; tickets stay, and nothing of a ticket still owed to the intake goes).
//! All file work runs on blocking threads.

use crate::admin::metrics::{Exposition, MetricSource};
use crate::admin::ReadinessCheck;
use crate::call::record::file_safe;
use crate::config::StorageConfig;
use crate::ticket::TicketService;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often free space is measured.
const DISK_CHECK: Duration = Duration::from_secs(5);
/// How often retention looks for expired files (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Tickets handled per retention batch (one store read each).
const RETENTION_BATCH: usize = 500;

/// Free space on the data directory against its floor, shared with the call manager.
#[derive(Debug, Default)]
pub struct DiskGuard {
    /// True while free space is below the floor: new calls get 503.
    pub low: Arc<AtomicBool>,
    free_bytes: AtomicU64,
    min_free_bytes: u64,
    /// Files retention deleted since start.
    pub purged_files: AtomicU64,
}

impl DiskGuard {
    pub fn new(min_free_mb: u64) -> DiskGuard {
        DiskGuard {
            min_free_bytes: min_free_mb.saturating_mul(1024 * 1024),
            ..DiskGuard::default()
        }
    }

    /// Records a measurement; returns whether the state changed.
    pub fn observe(&self, free_bytes: u64) -> bool {
        self.free_bytes.store(free_bytes, Ordering::Relaxed);
        let low = self.min_free_bytes > 0 && free_bytes < self.min_free_bytes;
        self.low.swap(low, Ordering::Relaxed) != low
    }
}

impl MetricSource for DiskGuard {
    fn collect(&self, out: &mut Exposition) {
        out.gauge(
            "hotline_storage_free_bytes",
            "Free space on the data directory.",
            self.free_bytes.load(Ordering::Relaxed),
        );
        out.gauge(
            "hotline_storage_low",
            "1 while free space is below storage.min_free_mb: new calls get 503. Alert on it.",
            u8::from(self.low.load(Ordering::Relaxed)),
        );
        out.counter(
            "hotline_retention_deleted_files_total",
            "Recordings, call records and outbox files deleted by storage.retention_days.",
            &self.purged_files,
        );
    }
}

impl ReadinessCheck for DiskGuard {
    fn not_ready(&self) -> Option<&'static str> {
        self.low
            .load(Ordering::Relaxed)
            .then_some("storage below min_free_mb")
    }
}

/// Free bytes for unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Where a ticket's files live.
#[derive(Clone, Debug)]
pub struct DataDirs {
    pub recordings: PathBuf,
    pub calls: PathBuf,
    pub outbox: PathBuf,
}

impl DataDirs {
    pub fn new(s: &StorageConfig) -> DataDirs {
        DataDirs {
            recordings: s.recordings_dir(),
            calls: s.calls_dir(),
            outbox: s.outbox_dir(),
        }
    }
}

/// One retention pass: deletes the files of tickets created before `before_ms` that are
/// delivered (or, with no intake, written to the outbox), marks them purged, and returns
/// how many files went. Blocking.
pub fn purge_once(
    tickets: &TicketService,
    dirs: &DataDirs,
    before_ms: i64,
    now_ms: i64,
) -> Result<u64, crate::ticket::TicketError> {
    let outbox_is_delivery = tickets.config().intake.url.is_none();
    let store = tickets.store();
    let mut deleted = 0;
    loop {
        let batch = store.purgeable(before_ms, outbox_is_delivery, RETENTION_BATCH)?;
        if batch.is_empty() {
            return Ok(deleted);
        }
        for (id, call_uid, document) in batch {
            let mut files = vec![
                dirs.calls.join(format!("{}.json", file_safe(&call_uid))),
                dirs.outbox.join(format!("{id}.json")),
            ];
            // The location comes from our own document; still, only ever delete inside the
            // recordings folder.
            if let Ok(t) = crate::ticket::store::parse_doc(&id, &document) {
                if let Some(r) = t.recording {
                    let p = PathBuf::from(&r.location);
                    if p.starts_with(&dirs.recordings) || inside(&p, &dirs.recordings) {
                        files.push(p);
                    }
                }
            }
            for f in files {
                match std::fs::remove_file(&f) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %f.display(), error = %e, "retention: cannot delete")
                    }
                }
            }
            store.mark_purged(&id, now_ms)?;
        }
    }
}

/// `p` lies under `dir` once both are made absolute (recording locations are absolute, the
/// configured folder may be relative).
fn inside(p: &Path, dir: &Path) -> bool {
    let abs = |x: &Path| {
        if x.is_absolute() {
            x.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(x))
                .unwrap_or_else(|_| x.to_path_buf())
        }
    };
    let (p, dir) = (abs(p), abs(dir));
    !p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        && p.starts_with(dir)
}

/// Measures free space every few seconds and runs retention hourly, until `stop` fires.
pub async fn run(
    guard: Arc<DiskGuard>,
    tickets: TicketService,
    storage: StorageConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let dirs = DataDirs::new(&storage);
    let mut next_retention = tokio::time::Instant::now();
    loop {
        let dir = storage.data_dir.clone();
        if let Ok(Ok(free)) = tokio::task::spawn_blocking(move || free_bytes(&dir)).await {
            if guard.observe(free) {
                if guard.low.load(Ordering::Relaxed) {
                    tracing::error!(
                        free_mb = free / (1024 * 1024),
                        min_free_mb = storage.min_free_mb,
                        "storage almost full: new calls are refused (503)"
                    );
                } else {
                    tracing::info!(
                        free_mb = free / (1024 * 1024),
                        "storage has room again: taking calls"
                    );
                }
            }
        }
        if storage.retention_days > 0 && tokio::time::Instant::now() >= next_retention {
            next_retention = tokio::time::Instant::now() + RETENTION_EVERY;
            let (t, d, g) = (tickets.clone(), dirs.clone(), guard.clone());
            let days = i64::try_from(storage.retention_days).unwrap_or(i64::MAX / 2);
            let now = chrono::Utc::now().timestamp_millis();
            let before = now.saturating_sub(days.saturating_mul(86_400_000));
            match tokio::task::spawn_blocking(move || purge_once(&t, &d, before, now)).await {
                Ok(Ok(n)) => {
                    g.purged_files.fetch_add(n, Ordering::Relaxed);
                    if n > 0 {
                        tracing::info!(files = n, days, "retention deleted expired files");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "retention pass failed; retried later"),
                Err(e) => tracing::warn!(error = %e, "retention task failed"),
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(DISK_CHECK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_trips_below_the_floor_and_clears_above_it() {
        let g = DiskGuard::new(100);
        assert!(!g.observe(200 * 1024 * 1024), "plenty: no change");
        assert!(g.observe(99 * 1024 * 1024));
        assert!(g.low.load(Ordering::Relaxed));
        assert_eq!(g.not_ready(), Some("storage below min_free_mb"));
        assert!(g.observe(101 * 1024 * 1024));
        assert!(!g.low.load(Ordering::Relaxed));
        let off = DiskGuard::new(0);
        assert!(!off.observe(0), "0 = no check");
    }

    #[test]
    fn free_space_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    /// Retention deletes the recording, call record and outbox file of a ticket that has
    /// reached its destination, keeps the ticket, and touches nothing of a ticket still owed
    /// to the intake, however old.
    #[tokio::test]
    async fn retention_deletes_only_what_a_delivered_ticket_no_longer_needs() {
        use crate::ticket::{CallFacts, HangupBy, RecordingFacts, TicketConfig};
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageConfig {
            data_dir: dir.path().to_path_buf(),
            ..StorageConfig::default()
        };
        let dirs = DataDirs::new(&storage);
        let facts = |uid: &str| {
            let at = chrono::Utc::now();
            let rec = dirs.recordings.join(format!("2026-11-26/{uid}.wav"));
            std::fs::create_dir_all(rec.parent().unwrap()).unwrap();
            std::fs::write(&rec, b"RIFF").unwrap();
            std::fs::create_dir_all(&dirs.calls).unwrap();
            std::fs::write(dirs.calls.join(format!("{uid}.json")), b"{}").unwrap();
            CallFacts {
                call_uid: uid.into(),
                call_id: format!("{uid}@host"),
                reference: None,
                trunk: None,
                caller: "13800000000".into(),
                called: "8890".into(),
                channel: "8890".into(),
                started_at: at,
                answered_at: at,
                ended_at: at,
                hangup_by: HangupBy::Caller,
                hangup_reason: "BYE".into(),
                menu: None,
                transfer: None,
                urgent_trigger: None,
                transcript: None,
                recording: Some(RecordingFacts {
                    path: rec,
                    duration_ms: 1000,
                }),
            }
        };
        let config = |url: Option<&str>, db: &str| {
            let mut c = TicketConfig {
                db_path: dir.path().join(db),
                outbox_dir: dirs.outbox.clone(),
                ..TicketConfig::default()
            };
            c.intake.url = url.map(str::to_owned);
            c
        };
        // No intake: the outbox file is the delivery.
        let delivered = TicketService::open(config(None, "a.sqlite")).unwrap();
        let t = delivered.create(facts("uid-done")).await.unwrap();
        let outbox = dirs.outbox.join(format!("{}.json", t.ticket_id));
        assert!(outbox.exists());
        // An intake that never answered: owed, so kept.
        let owed = TicketService::open(config(Some("http://127.0.0.1:9/"), "b.sqlite")).unwrap();
        owed.create(facts("uid-owed")).await.unwrap();

        let now = chrono::Utc::now().timestamp_millis() + 1;
        assert_eq!(purge_once(&delivered, &dirs, now, now).unwrap(), 3);
        assert!(!outbox.exists());
        assert!(!dirs.calls.join("uid-done.json").exists());
        assert!(!dirs.recordings.join("2026-11-26/uid-done.wav").exists());
        assert_eq!(
            delivered.store().list(None, 10).unwrap().len(),
            1,
            "the ticket stays"
        );
        assert_eq!(purge_once(&delivered, &dirs, now, now).unwrap(), 0, "once");
        // Not yet old enough: nothing.
        assert_eq!(purge_once(&owed, &dirs, now - 60_000, now).unwrap(), 0);
        assert_eq!(purge_once(&owed, &dirs, now, now).unwrap(), 0);
        assert!(dirs.calls.join("uid-owed.json").exists());
        assert!(dirs.recordings.join("2026-11-26/uid-owed.wav").exists());
    }
}
