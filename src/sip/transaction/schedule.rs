//! The layer's wake-up schedule: every live transaction's next deadline in one min-heap, so
//! [`TransactionLayer::poll_timeout`](super::TransactionLayer::poll_timeout) is a peek and
//! firing a timer costs O(log n), however many transactions are alive.
//!
//! Why a heap and not a scan: RFC 6026 keeps every answered INVITE alive for 64·T1 (32 s)
//! and Timer J every answered BYE as long, so at 300 call set-ups per second some 20,000
//! transactions are alive, and the endpoint asks for the next deadline on every loop turn.
//! A scan cost ~90 ns per transaction per question (BENCHMARKS.md §4).
//!
//! Lazy deletion: a transaction whose deadline changes (re-armed, stopped, terminated) does
//! not search the heap; it takes a new *generation* and pushes a new entry. An entry is
//! current only while its transaction still exists with that generation; the layer drops
//! stale entries when they reach the top (and compacts the heap when stale entries
//! outnumber live transactions), so the top is always current after every public call.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

use super::{TransactionKey, TransactionLayer};

/// Which table a scheduled transaction lives in (server and client keys may be equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Server,
    Client,
}

/// What a transaction remembers about its place in the schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Slot {
    /// The deadline last scheduled (`None`: nothing pending).
    pub at: Option<Instant>,
    /// The generation of its current heap entry. 0 is never pushed, so a fresh slot
    /// matches no entry, including the stale ones of an earlier transaction with its key.
    pub generation: u64,
}

/// One heap entry.
#[derive(Debug)]
pub(super) struct Entry {
    pub at: Instant,
    pub generation: u64,
    pub side: Side,
    pub key: TransactionKey,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Deadline first; equal deadlines fire in the order they were scheduled. Generations
    /// are unique, so no two entries compare equal.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.generation).cmp(&(other.at, other.generation))
    }
}

#[derive(Debug, Default)]
pub(super) struct Schedule {
    heap: BinaryHeap<Reverse<Entry>>,
    last_generation: u64,
}

impl Schedule {
    /// The transaction `key` on `side`, whose slot is `slot`, now wants to wake at `next`.
    /// Pushes a new entry only when the deadline changed; the old one goes stale.
    pub fn update(
        &mut self,
        slot: &mut Slot,
        next: Option<Instant>,
        side: Side,
        key: &TransactionKey,
    ) {
        if slot.at == next {
            return;
        }
        self.last_generation += 1;
        *slot = Slot {
            at: next,
            generation: self.last_generation,
        };
        if let Some(at) = next {
            self.heap.push(Reverse(Entry {
                at,
                generation: self.last_generation,
                side,
                key: key.clone(),
            }));
        }
    }

    pub fn peek(&self) -> Option<&Entry> {
        self.heap.peek().map(|Reverse(e)| e)
    }

    pub fn pop(&mut self) -> Option<Entry> {
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Entries in the heap, current and stale.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keep only the entries `current` accepts (O(n); used when stale entries pile up).
    pub fn retain(&mut self, mut current: impl FnMut(&Entry) -> bool) {
        self.heap.retain(|Reverse(e)| current(e));
    }

    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.heap.iter().map(|Reverse(e)| e)
    }
}

/// Stale entries tolerated beyond this many per live transaction before the heap is
/// compacted: keeps memory bounded when deadlines move later (Timer H → I on ACK) and the
/// old entries would otherwise wait 32 s to reach the top.
const STALE_PER_LIVE: usize = 3;

impl TransactionLayer {
    /// Server transaction `key` may have new timers: update its schedule entry.
    pub(super) fn reschedule_server(&mut self, key: &TransactionKey) {
        if let Some(entry) = self.servers.get_mut(key) {
            let next = entry.next_timeout();
            self.schedule
                .update(&mut entry.slot, next, Side::Server, key);
        }
    }

    /// Client transaction `key` may have new timers: update its schedule entry.
    pub(super) fn reschedule_client(&mut self, key: &TransactionKey) {
        if let Some(entry) = self.clients.get_mut(key) {
            let next = entry.machine.next_timeout();
            self.schedule
                .update(&mut entry.slot, next, Side::Client, key);
        }
    }

    fn is_current(&self, entry: &Entry) -> bool {
        let slot = match entry.side {
            Side::Server => self.servers.get(&entry.key).map(|s| s.slot),
            Side::Client => self.clients.get(&entry.key).map(|c| c.slot),
        };
        slot.is_some_and(|s| s.generation == entry.generation)
    }

    /// Drop stale entries from the top (and compact when they pile up), so that
    /// `poll_timeout` can peek. Called at the end of every method that changes timers.
    pub(super) fn prune_schedule(&mut self) {
        while let Some(top) = self.schedule.peek() {
            if self.is_current(top) {
                break;
            }
            self.schedule.pop();
        }
        let live = self.servers.len() + self.clients.len();
        if self.schedule.len() > 64 + STALE_PER_LIVE * live {
            let (servers, clients) = (&self.servers, &self.clients);
            self.schedule.retain(|e| {
                let slot = match e.side {
                    Side::Server => servers.get(&e.key).map(|s| s.slot),
                    Side::Client => clients.get(&e.key).map(|c| c.slot),
                };
                slot.is_some_and(|s| s.generation == e.generation)
            });
        }
    }

    /// Test check of the schedule against the machines themselves: `poll_timeout` equals
    /// the minimum over every live transaction (what a scan would say), each transaction's
    /// slot holds its real deadline, and each pending deadline has its current heap entry.
    #[cfg(test)]
    pub(super) fn check_schedule(&self) {
        use std::collections::HashMap;
        let mut in_heap: HashMap<(bool, &TransactionKey, u64), Instant> = HashMap::new();
        for e in self.schedule.entries() {
            in_heap.insert((e.side == Side::Server, &e.key, e.generation), e.at);
        }
        let servers = self
            .servers
            .iter()
            .map(|(k, e)| (Side::Server, k, e.next_timeout(), e.slot));
        let clients = self
            .clients
            .iter()
            .map(|(k, e)| (Side::Client, k, e.machine.next_timeout(), e.slot));
        let mut earliest: Option<Instant> = None;
        for (side, key, next, slot) in servers.chain(clients) {
            assert_eq!(slot.at, next, "{side:?} {key:?}: slot out of date");
            if let Some(at) = next {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
                let entry = in_heap.get(&(side == Side::Server, key, slot.generation));
                assert_eq!(entry, Some(&at), "{side:?} {key:?}: no current heap entry");
            }
        }
        assert_eq!(
            self.poll_timeout(),
            earliest,
            "poll_timeout differs from a scan"
        );
    }
}
