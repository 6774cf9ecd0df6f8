//! What the gateway may ask of a running call, from outside its flow: today, "transfer this
//! caller now" when an urgent word was heard in the message being recorded (issue 16 §3;
//! the decision is `gateway::urgent`'s, the call only carries it out). Reaches the shell
//! through a channel whose sender travels with each utterance ([`UtteranceFacts`]), so the
//! call layer needs no registry of calls and knows nothing of words or tickets.

use super::*;

/// A request to a running call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallRequest {
    /// Stop the message being recorded and put the caller through to `target` (a SIP URI;
    /// empty = `[transfer] target`), with the transfer step's machinery. Honoured only while
    /// a message is being recorded; if the operator does not take the call, the flow goes on
    /// as after the message.
    Transfer { target: String },
}

/// The sending side, handed out with each utterance.
pub type CallRequests = mpsc::UnboundedSender<CallRequest>;

/// The shell's side: the channel, and whether a request can still be honoured.
pub(super) struct Inbox {
    tx: CallRequests,
    rx: mpsc::UnboundedReceiver<CallRequest>,
    /// A message recording was started (requests before it have nothing to act on).
    pub recording: bool,
    /// A request was carried out: later ones are ignored (one hand-over per call).
    done: bool,
}

impl Default for Inbox {
    fn default() -> Inbox {
        let (tx, rx) = mpsc::unbounded_channel();
        Inbox {
            tx,
            rx,
            recording: false,
            done: false,
        }
    }
}

impl Inbox {
    pub(super) fn sender(&self) -> CallRequests {
        self.tx.clone()
    }

    /// The next request; never ends (the shell holds a sender).
    pub(super) async fn recv(&mut self) -> Option<CallRequest> {
        self.rx.recv().await
    }
}

impl Shell {
    /// Carries a request out. `Ok(Some(event))` for the engine (the message ended here),
    /// `Ok(None)` when there is nothing to do, `Err` when the call ended meanwhile (or the
    /// operator took it: [`Stop::Transferred`]).
    pub(super) async fn on_request(&mut self, req: CallRequest) -> Result<Option<Event>, Stop> {
        let CallRequest::Transfer { target } = req;
        // Only during the message: before it there is nothing heard, after it the flow has
        // moved on (read-back, goodbye) and is left to finish.
        if self.requests.done || !self.requests.recording || self.recording.is_some() {
            tracing::debug!("transfer request outside the message: ignored");
            return Ok(None);
        }
        self.requests.done = true;
        tracing::info!("transfer requested during the message: the message ends here");
        // The words so far stay the message (and the ticket's transcript).
        self.finish_recording().await;
        match self.transfer(target, String::new()).await? {
            Ok(()) => Err(Stop::Transferred),
            // Nobody took the call: the flow goes on as after the message.
            Err(why) => {
                tracing::info!(outcome = %why, "urgent transfer not answered: back to the flow");
                Ok(Some(Event::RecordingDone))
            }
        }
    }
}
