//! The shell's side of REFER mode: send the REFER through the manager, feed its answer and
//! NOTIFYs to [`Refer`], keep an eye on the caller meanwhile.

use super::*;
use crate::call::transfer::refer::{Refer, ReferResult};

impl Shell {
    /// Ask the caller's side to call the target. `Ok(Ok(()))`: referred (the flow ends and
    /// we hang up our leg); `Ok(Err(why))`: the flow takes its failure step.
    pub(super) async fn refer(
        &mut self,
        legs: &LegServices,
        send: Arc<dyn Fn(String) + Send + Sync>,
        refer_to: String,
        mut info: TransferInfo,
    ) -> Result<Result<(), String>, Stop> {
        let connecting = self.prompts(&[PromptRef {
            language: self.info.language.clone(),
            name: "transfer".into(),
        }]);
        self.media.play(connecting, false);
        tracing::info!(target = %info.target, "transfer: REFER to the caller's side");
        send(refer_to);
        let mut state = Refer::new(Instant::now().into_std());
        let mut accepted = false;
        let result: Result<ReferResult, Stop> = loop {
            let deadline = Instant::from_std(state.deadline()).min(self.call_deadline);
            tokio::select! {
                sig = self.signals.recv() => match sig {
                    Some(CallSignal::ReferAnswer(code)) => {
                        accepted |= (200..300).contains(&code);
                        if let Some(r) = state.on_answer(code) { break Ok(r); }
                    }
                    Some(CallSignal::Notify { body, state: s }) => {
                        accepted = true;
                        if let Some(r) = state.on_notify(&body, &s) { break Ok(r); }
                    }
                    // A transferee that accepted often just hangs up on us once connected.
                    Some(CallSignal::CallerHangup) if accepted => break Ok(ReferResult::Referred),
                    Some(CallSignal::CallerHangup) => break Err(Stop::CallerHangup),
                    Some(CallSignal::AckTimeout) => break Err(Stop::AckTimeout),
                    None | Some(CallSignal::Shutdown) => break Err(Stop::Shutdown),
                    Some(CallSignal::MediaUpdate(n)) => self.media.start(n.remote_rtp, n.codec, n.dtmf_pt),
                    Some(CallSignal::Digit(_)) => {}
                },
                ev = self.media.next_event() => if let None | Some(MediaEvent::RtpTimeout) = ev {
                    break Err(Stop::RtpTimeout);
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= self.call_deadline {
                        break Err(Stop::MaxDuration);
                    }
                    if let Some(r) = state.on_time(Instant::now().into_std()) { break Ok(r); }
                }
            }
        };
        self.media.stop_playback();
        let (outcome, answer) = match &result {
            Ok(ReferResult::Referred) => (Outcome::Referred, Ok(())),
            Ok(ReferResult::Failed(why)) => {
                tracing::info!(why = %why, "transfer: REFER failed; back to the flow");
                (Outcome::Failed, Err(why.clone()))
            }
            Err(_) => (Outcome::Abandoned, Err("abandoned".into())),
        };
        legs.counters.transferred(outcome.as_str());
        info.outcome = outcome.as_str().into();
        self.transfer = Some(info);
        // Referred: the flow ends and we BYE our leg (unless the caller's BYE came first:
        // the manager then sends none).
        match result {
            Err(stop) => Err(stop),
            Ok(_) => Ok(answer),
        }
    }
}
