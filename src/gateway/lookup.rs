//! The flow's [`TicketLookup`] over the ticket store: reference numbers for calls and a
//! ticket's progress by reference. Here, in the gateway, because the flow knows no ticket
//! store and the tickets know no call flow.

use crate::call::flow::TicketLookup;
use crate::ticket::store::{parse_doc, Store};
use crate::ticket::TicketError;
use std::sync::Arc;

pub struct StoreTickets {
    pub store: Arc<Store>,
    /// `[tickets] instance_number`: the 2 digits after the date in this gateway's references.
    pub instance: u8,
}

impl TicketLookup for StoreTickets {
    fn state(&self, reference: &str) -> Result<Option<String>, String> {
        // Only a whole reference: a keyed digit string must not match a ticket id prefix.
        if !crate::ticket::reference::is_reference(reference) {
            return Ok(None);
        }
        let record = match self.store.get(reference) {
            Ok(r) => r,
            Err(TicketError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let ticket = parse_doc(&record.ticket_id, &record.document).map_err(|e| e.to_string())?;
        let state = serde_json::to_value(ticket.progress.state).map_err(|e| e.to_string())?;
        Ok(state.as_str().map(str::to_owned))
    }

    fn allocate(&self, day: chrono::NaiveDate) -> Result<String, String> {
        self.store
            .allocate_reference(day, self.instance)
            .map_err(|e| e.to_string())
    }
}
