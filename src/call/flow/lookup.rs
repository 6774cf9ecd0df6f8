//! How the `lookup` action reaches the tickets: a trait object the gateway supplies, so
//! the flow knows no ticket store (and tests need none).

/// A ticket's handling state by reference.
pub trait TicketLookup: Send + Sync {
    /// `Ok(Some(state))` (`accepted`, `in_progress`, `resolved`), `Ok(None)` when no ticket
    /// has that reference, `Err` when the store cannot answer. Called off the runtime
    /// (it may block on the store).
    fn state(&self, reference: &str) -> Result<Option<String>, String>;

    /// The next reference number of `day` (the call's day in local time), committed
    /// before it returns, so a number said to a caller is never handed out again. Called
    /// off the runtime. The default (no store) has none to give.
    fn allocate(&self, _day: chrono::NaiveDate) -> Result<String, String> {
        Err("no ticket store".into())
    }
}

/// No ticket store to ask (the default until tickets carry a reference and progress):
/// every reference is unknown.
#[derive(Debug, Default)]
pub struct NoTickets;

impl TicketLookup for NoTickets {
    fn state(&self, _reference: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}
