//! The shell's side of the flow's `transfer` step: office hours, the context for the operator,
//! then bridge mode here or REFER mode (`refer.rs`). Apart from `ivr.rs` so the shell's main
//! loop reads on its own.

use super::*;
use crate::call::record::BridgedRecording;

impl Shell {
    /// The flow's transfer step: `Ok` with the step's answer (the operator talked to the
    /// caller, or why not: `busy`, `out_of_hours`…, so the flow's failure step leaves a
    /// message), `Err` when the caller's side ended meanwhile.
    pub(super) async fn transfer(
        &mut self,
        target: String,
        menu: String,
    ) -> Result<Result<(), String>, Stop> {
        let Some(legs) = self.legs.clone() else {
            tracing::info!("transfer requested: unavailable");
            return Ok(Err("unavailable".into()));
        };
        let target = match target.trim() {
            "" => legs.config.target.trim().to_owned(),
            t => t.to_owned(),
        };
        if target.is_empty() {
            tracing::info!("transfer requested, but no [transfer] target: unavailable");
            return Ok(Err("unavailable".into()));
        }
        let started_at = Utc::now();
        let mut info = TransferInfo {
            mode: "bridge".into(),
            target: target.clone(),
            outcome: Outcome::OutOfHours.as_str().into(),
            started_at,
            answered_at: None,
            talk_ms: None,
            recording: None,
        };
        if !legs.config.open_at(started_at) {
            tracing::info!("transfer requested outside the operators' hours");
            legs.counters.transferred(Outcome::OutOfHours.as_str());
            self.transfer = Some(info);
            return Ok(Err(Outcome::OutOfHours.as_str().into()));
        }
        let cx = Context {
            caller: self.info.caller.clone(),
            menu,
            // Allocated just before the transfer command (see `Command::AllocateReference`);
            // without one (the store failed) the header is left out.
            reference: self.reference.clone().unwrap_or_default(),
            call_uid: self.info.call_uid.clone(),
        };
        if legs.config.mode == "refer" {
            if let Some(send) = legs.refer.clone() {
                info.mode = "refer".into();
                let refer_to = crate::call::transfer::refer::refer_to(&target, &cx);
                return self.refer(&legs, send, refer_to, info).await;
            }
        }
        let connecting = self.prompts(&[PromptRef {
            language: self.info.language.clone(),
            name: "transfer".into(),
        }]);
        let record_to = legs.config.record_bridged.then(|| self.conversation_path());
        let side = leg::CallerSide {
            media: &mut self.media,
            signals: &mut self.signals,
            deadline: self.call_deadline,
            connecting,
            caller: self.info.caller.clone(),
            record_to,
        };
        let r = leg::bridge_call(&legs, &target, &cx, side).await;
        legs.counters.transferred(r.outcome.as_str());
        info.outcome = r.outcome.as_str().into();
        info.answered_at = r.answered_at;
        info.talk_ms = r.talk.map(|d| d.as_millis() as u64);
        info.recording = r.conversation.map(|c| BridgedRecording {
            path: c.path,
            duration_ms: c.duration.as_millis() as u64,
        });
        self.transfer = Some(info);
        match r.caller_end {
            Some(leg::CallerEnd::Bye) => Err(Stop::CallerHangup),
            Some(leg::CallerEnd::RtpTimeout) => Err(Stop::RtpTimeout),
            Some(leg::CallerEnd::MaxDuration) => Err(Stop::MaxDuration),
            Some(leg::CallerEnd::AckTimeout) => Err(Stop::AckTimeout),
            Some(leg::CallerEnd::Shutdown) => Err(Stop::Shutdown),
            None if r.outcome == Outcome::Answered => Ok(Ok(())),
            None => Ok(Err(r.outcome.as_str().into())),
        }
    }

    /// `recordings/<day>/<call_uid>-conversation.wav`, beside where a message would be: in
    /// the recordings folder, the only place retention deletes a ticket's recording from.
    fn conversation_path(&self) -> PathBuf {
        let day = self.info.started_at.format("%Y-%m-%d").to_string();
        self.settings.recordings_dir.join(day).join(format!(
            "{}-conversation.wav",
            crate::call::record::file_safe(&self.info.call_uid)
        ))
    }
}
