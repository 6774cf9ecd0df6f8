//! The IVR for one answered call: the async shell around the flow engine
//! ([`super::flow::Engine`]). The engine decides (which prompt, which step, what a digit
//! means); this shell carries its commands out against the [`MediaSession`], feeds it what
//! happens, and writes the call record.
//!
//! The shell merges two inputs: media events (DTMF, playback done, recording done, RTP
//! timeout) and [`CallSignal`]s from the manager (the caller's BYE, SIP INFO digits,
//! re-negotiated media). It never touches SIP. What ends the call from outside (BYE, RTP
//! timeout, `max_call_duration`, shutdown) is the shell's; the engine is told, so that an
//! open recording is closed and described in the record.

use super::flow::{BargePolicy, Command, Engine, Event, Flow, PromptRef, TicketLookup};
use super::prompts::PromptLibrary;
use super::record::{
    CallRecord, Hangup, MediaSummary, RecordingInfo, TransferInfo, CALL_RECORD_SCHEMA,
};
use super::transfer::{context::Context, leg, LegServices, Outcome};
use crate::config::{IvrConfig, MenuConfig, RecordingConfig};
use crate::media::prompt::SharedPrompt;
use crate::media::sdp::Negotiated;
use crate::media::session::{
    BargeIn, MediaEvent, MediaSession, OnsetConfig, RecordEnd, RecordSpec, SpeechBargeIn,
};
use crate::media::vad::EndpointerConfig;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

mod listen;
mod operator;
mod refer;
mod request;

pub use request::{CallRequest, CallRequests};

pub use listen::{MenuListener, SpokenRequest};

/// What the manager tells a running call.
#[derive(Debug)]
pub enum CallSignal {
    /// The caller sent BYE (already answered 200 by the manager).
    CallerHangup,
    /// No ACK came for our 200: the dialog never got confirmed.
    AckTimeout,
    /// A digit that came as SIP INFO instead of RFC 4733.
    Digit(char),
    /// A re-INVITE/UPDATE changed where or how to send media.
    MediaUpdate(Negotiated),
    /// The daemon is stopping.
    Shutdown,
    /// The final answer to our REFER (408 when none came).
    ReferAnswer(u16),
    /// A NOTIFY of our REFER's subscription (answered 200 by the manager).
    Notify { body: String, state: String },
    // A "caller put us on hold" signal (from media or a re-INVITE) would go here and
    // become an engine event, so that a flow can pause its prompts.
}

/// Everything the IVR needs that does not change during the call.
pub struct IvrSettings {
    /// The flow calls run; each call keeps the `Arc` it started with (SIGHUP swaps it for
    /// new calls only).
    pub flow: Arc<Flow>,
    /// Where `lookup` steps find a ticket's state.
    pub lookup: Arc<dyn TicketLookup>,
    pub menu: MenuConfig,
    /// Speech barge-in policy.
    pub ivr: IvrConfig,
    pub recording: RecordingConfig,
    pub max_call_duration: Duration,
    pub prompts: Arc<PromptLibrary>,
    pub recordings_dir: PathBuf,
    pub instance: String,
    /// Where each utterance of a message goes while the caller is still talking (the
    /// gateway transcribes it); `None`: messages are cut into no utterances.
    pub on_utterance: Option<UtteranceSink>,
    /// Where the spoken menu's utterances go to be heard (transcribed and classified by
    /// the gateway); `None`: the menu is keys only.
    pub on_menu_speech: Option<MenuListener>,
}

/// One utterance of a message being recorded, as plain data: the call layer forwards it and
/// knows nothing of what is done with it.
#[derive(Clone, Debug)]
pub struct UtteranceFacts {
    pub call_id: String,
    /// The gateway's own id of the call.
    pub call_uid: String,
    /// The call's reference number, when allocated.
    pub reference: Option<String>,
    /// Where the gateway may ask this call for something (see [`CallRequest`]).
    pub requests: CallRequests,
    pub language: String,
    /// 0 for the first utterance of the message.
    pub index: u32,
    /// Where it begins in the message.
    pub start_ms: u64,
    /// 8 kHz mono samples.
    pub pcm: Arc<[i16]>,
}

/// Receives [`UtteranceFacts`]; must not block (it runs on the call's task).
pub type UtteranceSink = Box<dyn Fn(UtteranceFacts) + Send + Sync>;

/// Facts about the call known when it is answered.
#[derive(Clone, Debug)]
pub struct CallInfo {
    /// The gateway's own id of this call (see `CallRecord::call_uid`); set by the manager.
    pub call_uid: String,
    pub call_id: String,
    pub caller: String,
    pub caller_name: Option<String>,
    pub called: String,
    pub channel: String,
    /// The `[[trunk]]` the call came in on, when trunks are configured.
    pub trunk: Option<String>,
    pub language: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
    pub codec: String,
}

/// How the IVR ended: the record to write, and whether the gateway must send BYE.
pub struct IvrOutcome {
    pub record: CallRecord,
    pub send_bye: bool,
}

/// Why the flow stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    CallerHangup,
    RtpTimeout,
    MaxDuration,
    AckTimeout,
    Shutdown,
    /// The gateway asked for a transfer during the message and the operator took the call.
    Transferred,
}

impl Stop {
    fn hangup(self) -> Hangup {
        match self {
            Stop::CallerHangup => Hangup::new("caller", "caller_bye"),
            Stop::RtpTimeout => Hangup::new("gateway", "rtp_timeout"),
            Stop::MaxDuration => Hangup::new("gateway", "max_duration"),
            Stop::AckTimeout => Hangup::new("gateway", "ack_timeout"),
            Stop::Shutdown => Hangup::new("gateway", "shutdown"),
            Stop::Transferred => Hangup::new("gateway", "completed"),
        }
    }
}

/// The shell: the media session, the manager's signals and what the record needs.
struct Shell {
    info: CallInfo,
    settings: Arc<IvrSettings>,
    media: MediaSession,
    signals: mpsc::UnboundedReceiver<CallSignal>,
    call_deadline: Instant,
    /// Answers to commands, fed to the engine before waiting for anything else.
    pending: VecDeque<Event>,
    recording: Option<RecordingInfo>,
    /// How to call an operator (`None`: transfers are unavailable, e.g. in unit tests).
    legs: Option<LegServices>,
    transfer: Option<TransferInfo>,
    /// The call's reference number once allocated: known here before the engine hears of
    /// it, for a transfer that follows at once (`X-Hotline-Reference`).
    reference: Option<String>,
    /// What the gateway asks of this call while it runs (`request.rs`).
    requests: request::Inbox,
    /// The spoken menu: the language it listens in, and the words of the latest utterance
    /// on their way back from the gateway.
    listening: Option<String>,
    hearing: Option<tokio::sync::oneshot::Receiver<super::flow::Heard>>,
}

/// The record of a call that has only just been answered, as it stands if nothing more is
/// ever learned (the daemon dies): hung up by the gateway, reason `interrupted`.
pub fn provisional_record(info: &CallInfo, instance: &str) -> CallRecord {
    CallRecord {
        schema: CALL_RECORD_SCHEMA.into(),
        call_uid: info.call_uid.clone(),
        call_id: info.call_id.clone(),
        instance: instance.to_string(),
        caller: info.caller.clone(),
        caller_name: info.caller_name.clone(),
        called: info.called.clone(),
        channel: info.channel.clone(),
        trunk: info.trunk.clone(),
        started_at: info.started_at,
        answered_at: Some(info.answered_at),
        ended_at: info.answered_at,
        duration_ms: 0,
        language: info.language.clone(),
        menu: None,
        recording: None,
        barge_in: None,
        transcript: None,
        hangup: Hangup::new("gateway", "interrupted"),
        media: MediaSummary {
            codec: info.codec.clone(),
            ..MediaSummary::default()
        },
        flow: None,
        transfer: None,
    }
}

/// Run the IVR to its end and produce the call record.
pub async fn run(
    info: CallInfo,
    settings: Arc<IvrSettings>,
    media: MediaSession,
    signals: mpsc::UnboundedReceiver<CallSignal>,
    legs: Option<LegServices>,
) -> IvrOutcome {
    let now = Instant::now();
    let mut engine = Engine::new(
        settings.flow.clone(),
        &info.language,
        Utc::now(),
        now.into_std(),
    );
    let mut shell = Shell {
        call_deadline: now + settings.max_call_duration,
        info,
        settings,
        media,
        signals,
        pending: VecDeque::new(),
        recording: None,
        legs,
        transfer: None,
        reference: None,
        requests: request::Inbox::default(),
        listening: None,
        hearing: None,
    };
    engine.start(now.into_std());
    let (hangup, send_bye) = match shell.drive(&mut engine).await {
        Ok(()) => (Hangup::new("gateway", "completed"), true),
        Err(stop) => {
            let open = engine.recording();
            engine.handle(Event::Hangup, Instant::now().into_std());
            if open && stop != Stop::AckTimeout && shell.recording.is_none() {
                shell.finish_recording().await;
            }
            (stop.hangup(), stop != Stop::CallerHangup)
        }
    };
    let Shell {
        info,
        media,
        recording,
        settings,
        transfer,
        ..
    } = shell;
    let stats = media.close().await;
    let ended_at = Utc::now();
    let cx = engine.ctx();
    let record = CallRecord {
        schema: CALL_RECORD_SCHEMA.into(),
        call_uid: info.call_uid,
        call_id: info.call_id,
        instance: settings.instance.clone(),
        caller: info.caller,
        caller_name: info.caller_name,
        called: info.called,
        channel: info.channel,
        trunk: info.trunk,
        started_at: info.started_at,
        answered_at: Some(info.answered_at),
        ended_at,
        duration_ms: (ended_at - info.started_at).num_milliseconds().max(0) as u64,
        // The flow may have switched language (a language menu): the prompts' language is
        // the one the caller spoke in, and the one to transcribe in.
        language: match cx.language() {
            "" => info.language,
            chosen => chosen.to_owned(),
        },
        menu: cx.menu.clone(),
        recording,
        barge_in: cx.barge_in.map(str::to_owned),
        transcript: None,
        hangup,
        media: MediaSummary {
            codec: info.codec,
            packets_sent: stats.packets_sent,
            packets_received: stats.packets_received,
            packets_dropped: stats.packets_dropped,
        },
        flow: Some(engine.trace()),
        transfer,
    };
    IvrOutcome { record, send_bye }
}

impl Shell {
    /// Carry out the engine's commands and feed it events until the flow hangs up (`Ok`)
    /// or the call ends under it.
    async fn drive(&mut self, engine: &mut Engine) -> Result<(), Stop> {
        loop {
            while let Some(cmd) = engine.poll_command() {
                if let Command::Transfer { target } = cmd {
                    let menu = engine.ctx().menu.as_ref().map(|m| m.id.clone());
                    let done = self.transfer(target, menu.unwrap_or_default()).await?;
                    self.pending.push_back(Event::TransferDone(done));
                    continue;
                }
                if self.carry_out(cmd).await {
                    return Ok(());
                }
            }
            if let Some(ev) = self.pending.pop_front() {
                engine.handle(ev, Instant::now().into_std());
                continue;
            }
            if engine.end().is_some() {
                return Ok(());
            }
            let deadline = engine.deadline().map(Instant::from_std);
            let ev = self.next(deadline).await?;
            engine.handle(ev, Instant::now().into_std());
        }
    }

    /// True when the command ends the flow.
    async fn carry_out(&mut self, cmd: Command) -> bool {
        tracing::debug!(?cmd, "flow command");
        match cmd {
            Command::Play { prompts, barge_in } => {
                let prompts = self.prompts(&prompts);
                let barge_in = self.barge_in(barge_in);
                self.media.play_with(prompts, barge_in);
            }
            Command::StopPlayback => self.media.stop_playback(),
            Command::StartRecording { preroll } => {
                if self.start_recording(preroll).await {
                    self.requests.recording = true;
                } else {
                    self.pending.push_back(Event::RecordingFailed);
                }
            }
            Command::StopRecording => self.media.stop_recording(),
            Command::Listen(language) => self.listen(language),
            Command::Lookup { reference } => {
                let lookup = self.settings.lookup.clone();
                let r = tokio::task::spawn_blocking(move || lookup.state(&reference))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                self.pending.push_back(Event::LookupDone(r));
            }
            Command::AllocateReference => {
                let lookup = self.settings.lookup.clone();
                let day = self
                    .info
                    .started_at
                    .with_timezone(&chrono::Local)
                    .date_naive();
                let r = tokio::task::spawn_blocking(move || lookup.allocate(day))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                match r {
                    Ok(reference) => {
                        tracing::info!(call_uid = %self.info.call_uid, %reference, "reference allocated");
                        self.reference = Some(reference.clone());
                        self.pending.push_back(Event::Reference(reference));
                    }
                    // The message is still taken; the ticket just has no number to quote.
                    Err(e) => tracing::warn!(error = %e, "no reference for this call"),
                }
            }
            // Carried out by `transfer`, which may end the call.
            Command::Transfer { .. } => {}
            Command::Hangup => return true,
        }
        false
    }

    async fn start_recording(&mut self, preroll: bool) -> bool {
        let rec = &self.settings.recording;
        let day = self.info.started_at.format("%Y-%m-%d").to_string();
        let dir = self.settings.recordings_dir.join(day);
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            tracing::error!(error = %e, dir = %dir.display(), "cannot create recordings directory");
            return false;
        }
        let path = dir.join(format!(
            "{}.wav",
            super::record::file_safe(&self.info.call_uid)
        ));
        let preroll = if preroll {
            Duration::from_millis(self.settings.ivr.barge_in_preroll_ms)
        } else {
            Duration::ZERO
        };
        self.media.start_recording_with_preroll(
            RecordSpec {
                path,
                max_duration: Duration::from_secs(rec.max_duration_secs),
                endpointer: Some(EndpointerConfig {
                    speech_threshold_dbfs: rec.speech_threshold_dbfs,
                    trailing_silence: Duration::from_millis(rec.trailing_silence_ms),
                    no_speech_timeout: Duration::from_secs(rec.no_speech_timeout_secs),
                }),
                stop_digit: rec.end_digit.chars().next(),
                utterance_pause: (rec.utterance_pause_ms > 0
                    && self.settings.on_utterance.is_some())
                .then(|| Duration::from_millis(rec.utterance_pause_ms)),
            },
            preroll,
        );
        true
    }

    /// On an early stop, make sure an open recording is closed and described in the record.
    ///
    /// Only when a recording was started: otherwise no `RecordingDone` ever comes, and
    /// waiting for it held every hang-up outside the message phase (max duration, shutdown,
    /// RTP timeout, caller BYE during the menu) for 3 s before our BYE and the record.
    async fn finish_recording(&mut self) {
        self.media.stop_recording();
        let give_up = Instant::now() + Duration::from_secs(3);
        loop {
            tokio::select! {
                ev = self.media.next_event() => match ev {
                    Some(MediaEvent::RecordingDone { path, reason, duration, heard_speech, .. }) => {
                        self.recording = Some(recording_info(path, reason, duration, heard_speech));
                        return;
                    }
                    Some(MediaEvent::Utterance { index, start, pcm }) => {
                        self.forward_utterance(index, start, pcm);
                    }
                    Some(_) => continue,
                    None => return,
                },
                _ = tokio::time::sleep_until(give_up) => return,
            }
        }
    }

    fn forward_utterance(&self, index: u32, start: Duration, pcm: Arc<[i16]>) {
        if let Some(sink) = &self.settings.on_utterance {
            sink(UtteranceFacts {
                call_id: self.info.call_id.clone(),
                call_uid: self.info.call_uid.clone(),
                reference: self.reference.clone(),
                requests: self.requests.sender(),
                language: self.info.language.clone(),
                index,
                start_ms: start.as_millis() as u64,
                pcm,
            });
        }
    }

    fn prompts(&self, refs: &[PromptRef]) -> Vec<SharedPrompt> {
        let library = &self.settings.prompts;
        refs.iter()
            .filter_map(|r| {
                let p = match r.name.as_str() {
                    "beep" => Some(library.beep()),
                    "pause" => Some(library.pause()),
                    name => library.get(&r.language, name),
                };
                if p.is_none() {
                    tracing::warn!(prompt = %r.name, language = %r.language, "prompt missing");
                }
                p
            })
            .collect()
    }

    /// The media session's barge-in for the engine's policy: speech with `[ivr]`'s onset.
    fn barge_in(&self, policy: BargePolicy) -> BargeIn {
        let ivr = &self.settings.ivr;
        BargeIn {
            dtmf: policy.dtmf,
            speech: policy.speech.then(|| SpeechBargeIn {
                onset: OnsetConfig {
                    min_speech: Duration::from_millis(ivr.barge_in_min_speech_ms),
                    min_level_dbfs: ivr.barge_in_level_dbfs,
                    snr_db: ivr.barge_in_snr_db,
                    ..OnsetConfig::default()
                },
                preroll: Duration::from_millis(ivr.barge_in_preroll_ms),
            }),
        }
    }

    /// The next thing that happens on the call, as an engine event; what ends the call
    /// from outside as `Err`.
    async fn next(&mut self, deadline: Option<Instant>) -> Result<Event, Stop> {
        loop {
            let until = deadline.map_or(self.call_deadline, |d| d.min(self.call_deadline));
            tokio::select! {
                ev = self.media.next_event() => match ev {
                    None | Some(MediaEvent::RtpTimeout) => return Err(Stop::RtpTimeout),
                    Some(MediaEvent::Dtmf(d)) => return Ok(Event::Digit(d)),
                    Some(MediaEvent::SpeechStarted) => return Ok(Event::SpeechStarted),
                    Some(MediaEvent::HeardStart) => return Ok(Event::Listening),
                    Some(MediaEvent::Heard { pcm }) => {
                        self.heard(pcm);
                        continue;
                    }
                    Some(MediaEvent::PlaybackDone { .. }) => return Ok(Event::PlaybackDone),
                    Some(MediaEvent::Utterance { index, start, pcm }) => {
                        self.forward_utterance(index, start, pcm);
                        continue;
                    }
                    Some(MediaEvent::RecordingDone { path, reason, duration, heard_speech, .. }) => {
                        tracing::info!(
                            ms = duration.as_millis() as u64,
                            ?reason,
                            heard_speech,
                            "message recorded"
                        );
                        self.recording = Some(recording_info(path, reason, duration, heard_speech));
                        return Ok(Event::RecordingDone);
                    }
                },
                sig = self.signals.recv() => match sig {
                    None | Some(CallSignal::Shutdown) => return Err(Stop::Shutdown),
                    Some(CallSignal::CallerHangup) => return Err(Stop::CallerHangup),
                    Some(CallSignal::AckTimeout) => return Err(Stop::AckTimeout),
                    Some(CallSignal::Digit(d)) => return Ok(Event::Digit(d)),
                    Some(CallSignal::MediaUpdate(n)) => {
                        self.media.start(n.remote_rtp, n.codec, n.dtmf_pt);
                        continue;
                    }
                    // Late word about a REFER already decided.
                    Some(CallSignal::ReferAnswer(_) | CallSignal::Notify { .. }) => continue,
                },
                Some(req) = self.requests.recv() => match self.on_request(req).await? {
                    Some(ev) => return Ok(ev),
                    None => continue,
                },
                heard = listen::words(&mut self.hearing), if self.hearing.is_some() => {
                    self.hearing = None;
                    return Ok(Event::Speech(heard));
                }
                _ = tokio::time::sleep_until(until) => {
                    if Instant::now() >= self.call_deadline {
                        return Err(Stop::MaxDuration);
                    }
                    return Ok(Event::Timer);
                }
            }
        }
    }
}

fn recording_info(
    path: PathBuf,
    reason: RecordEnd,
    duration: Duration,
    heard_speech: bool,
) -> RecordingInfo {
    RecordingInfo {
        path,
        format: "wav/pcm_s16le/8000/mono".into(),
        duration_ms: duration.as_millis() as u64,
        ended_by: match reason {
            RecordEnd::StopDigit => "stop_digit",
            RecordEnd::EndOfSpeech => "end_of_speech",
            RecordEnd::NoSpeech => "no_speech",
            RecordEnd::MaxDuration => "max_duration",
            RecordEnd::Stopped => "hangup",
        }
        .into(),
        heard_speech,
    }
}
