//! Operators' category corrections made on any instance's desk, for retraining.
//!
//! In a fleet the desks write corrections to the shared store only, so a retrain that read
//! just the local store would learn nothing from them. Start-up, reload and
//! `classify retrain` read both and keep the latest correction of each ticket.

use chrono::{TimeZone, Utc};

use super::{pg_err, FleetConfig, PgConn};
use crate::ticket::classify::corrections::Correction;
use crate::ticket::store::Store;
use crate::ticket::TicketError;

/// How long a start-up or reload waits for the shared store before going on with the local
/// corrections only (a database that is away must not stop the gateway from starting).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The latest correction of every corrected ticket in the shared store, oldest first.
pub async fn read(conn: &PgConn) -> Result<Vec<Correction>, TicketError> {
    let client = conn.get().await?;
    let rows = client
        .query(
            "SELECT ticket_id, category_id, text, corrected_by, corrected_at_ms
               FROM hotline_classification_corrections
              WHERE id IN (SELECT MAX(id) FROM hotline_classification_corrections
                            GROUP BY ticket_id)
              ORDER BY id",
            &[],
        )
        .await
        .map_err(pg_err("query"))?;
    Ok(rows
        .iter()
        .map(|r| Correction {
            ticket_id: r.get(0),
            category_id: r.get(1),
            text: r.get(2),
            by: r.get(3),
            at: Utc
                .timestamp_millis_opt(r.get(4))
                .single()
                .unwrap_or_default(),
        })
        .collect())
}

/// [`read`] from blocking code (start-up, reload, the CLI): on a thread of its own with its
/// own runtime, so it works whether or not the caller is inside one.
pub fn read_blocking(cfg: &FleetConfig) -> Result<Vec<Correction>, TicketError> {
    let url = cfg.url.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TicketError::Fleet(format!("reading the fleet's corrections: {e}")))?;
        rt.block_on(async {
            let conn = PgConn::from_url(&url)?;
            tokio::time::timeout(READ_TIMEOUT, read(&conn))
                .await
                .unwrap_or_else(|_| Err(TicketError::Fleet("timed out".into())))
        })
        .map_err(|e| TicketError::Fleet(format!("reading the fleet's corrections: {e}")))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(TicketError::Fleet(
            "reading the fleet's corrections: panicked".into(),
        ))
    })
}

/// The corrections a retrain folds in: the local store's, and in a fleet the shared
/// store's too. A shared store that cannot be read is logged and left out here (start-up and
/// reload go on; the next reload tries again); `strict` makes it an error (the CLI).
pub fn gather(
    store: &Store,
    fleet: Option<&FleetConfig>,
    strict: bool,
) -> Result<Vec<Correction>, TicketError> {
    let local = store.corrections()?;
    let Some(cfg) = fleet else { return Ok(local) };
    match read_blocking(cfg) {
        Ok(shared) => Ok(merge(local, shared)),
        Err(e) if !strict => {
            tracing::warn!(error = %e, "the fleet's corrections are not folded in this time");
            Ok(local)
        }
        Err(e) => Err(e),
    }
}

/// Local and fleet corrections as one list: the latest of each ticket wins (a ticket moved
/// to the fleet may have been corrected locally first), oldest first.
pub fn merge(local: Vec<Correction>, fleet: Vec<Correction>) -> Vec<Correction> {
    let mut latest: std::collections::HashMap<String, Correction> =
        std::collections::HashMap::new();
    for c in local.into_iter().chain(fleet) {
        match latest.get(&c.ticket_id) {
            Some(old) if old.at > c.at => {}
            _ => {
                latest.insert(c.ticket_id.clone(), c);
            }
        }
    }
    let mut all: Vec<Correction> = latest.into_values().collect();
    all.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.ticket_id.cmp(&b.ticket_id)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, cat: &str, ms: i64) -> Correction {
        Correction {
            ticket_id: id.into(),
            category_id: cat.into(),
            text: format!("text of {id}"),
            by: "op".into(),
            at: Utc.timestamp_millis_opt(ms).single().unwrap(),
        }
    }

    #[test]
    fn the_latest_correction_of_a_ticket_wins_wherever_it_was_made() {
        let local = vec![c("t1", "noise", 10), c("t2", "roads", 20)];
        let fleet = vec![
            c("t1", "construction", 30),
            c("t3", "water", 5),
            c("t2", "lamps", 15),
        ];
        let merged = merge(local, fleet);
        let got: Vec<(&str, &str)> = merged
            .iter()
            .map(|c| (c.ticket_id.as_str(), c.category_id.as_str()))
            .collect();
        assert_eq!(
            got,
            [("t3", "water"), ("t2", "roads"), ("t1", "construction")]
        );
    }
}
