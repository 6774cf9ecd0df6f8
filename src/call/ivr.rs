//! The IVR for one answered call: greeting and menu, a DTMF choice, a recorded message,
//! thanks, goodbye. Driven entirely by configuration; this file holds the order of steps
//! and what happens when the caller does something unexpected.
//!
//! The flow sees two inputs, merged by [`Ivr::next`]: media events (DTMF, playback done,
//! recording done, RTP timeout) and [`CallSignal`]s from the manager (the caller's BYE,
//! SIP INFO digits, re-negotiated media). It never touches SIP.

use super::prompts::PromptLibrary;
use super::record::{
    CallRecord, Hangup, MediaSummary, MenuSelection, RecordingInfo, CALL_RECORD_SCHEMA,
};
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
}

/// Everything the IVR needs that does not change during the call.
pub struct IvrSettings {
    pub menu: MenuConfig,
    /// Speech barge-in policy.
    pub ivr: IvrConfig,
    pub recording: RecordingConfig,
    pub max_call_duration: Duration,
    pub prompts: Arc<PromptLibrary>,
    pub recordings_dir: PathBuf,
    pub instance: String,
}

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
}

impl Stop {
    fn hangup(self) -> Hangup {
        match self {
            Stop::CallerHangup => Hangup::new("caller", "caller_bye"),
            Stop::RtpTimeout => Hangup::new("gateway", "rtp_timeout"),
            Stop::MaxDuration => Hangup::new("gateway", "max_duration"),
            Stop::AckTimeout => Hangup::new("gateway", "ack_timeout"),
            Stop::Shutdown => Hangup::new("gateway", "shutdown"),
        }
    }
}

enum Step {
    Media(MediaEvent),
    Digit(char),
    Timeout,
}

/// What came while waiting for a menu choice.
enum Input {
    Digit(char),
    /// The caller talked over the menu (speech barge-in `all`).
    Speech,
    Timeout,
}

/// Where in the flow a prompt plays, for `ivr.speech_barge_in`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Menu,
    Message,
}

struct Ivr {
    info: CallInfo,
    settings: Arc<IvrSettings>,
    media: MediaSession,
    signals: mpsc::UnboundedReceiver<CallSignal>,
    call_deadline: Instant,
    digits: VecDeque<char>,
    playing: bool,
    /// A digit stops what is playing now.
    playing_dtmf_barge_in: bool,
    /// The caller talked over a prompt (speech barge-in): the message is recorded at once.
    speech_barged_in: bool,
    /// For the record: `speech` or `dtmf`.
    barge_in: Option<&'static str>,
    menu: Option<MenuSelection>,
    recording: Option<RecordingInfo>,
    /// A recording was started (and so a `RecordingDone` is owed by the media session).
    recording_started: bool,
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
    }
}

/// Run the IVR to its end and produce the call record.
pub async fn run(
    info: CallInfo,
    settings: Arc<IvrSettings>,
    media: MediaSession,
    signals: mpsc::UnboundedReceiver<CallSignal>,
) -> IvrOutcome {
    let call_deadline = Instant::now() + settings.max_call_duration;
    let mut ivr = Ivr {
        info,
        settings,
        media,
        signals,
        call_deadline,
        digits: VecDeque::new(),
        playing: false,
        playing_dtmf_barge_in: false,
        speech_barged_in: false,
        barge_in: None,
        menu: None,
        recording: None,
        recording_started: false,
    };
    let (hangup, send_bye) = match ivr.flow().await {
        Ok(()) => (Hangup::new("gateway", "completed"), true),
        Err(stop) => {
            ivr.finish_recording_after(stop).await;
            (stop.hangup(), stop != Stop::CallerHangup)
        }
    };
    let Ivr {
        info,
        media,
        menu,
        recording,
        settings,
        barge_in,
        ..
    } = ivr;
    let stats = media.close().await;
    let ended_at = Utc::now();
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
        language: info.language,
        menu,
        recording,
        barge_in: barge_in.map(str::to_owned),
        transcript: None,
        hangup,
        media: MediaSummary {
            codec: info.codec,
            packets_sent: stats.packets_sent,
            packets_received: stats.packets_received,
            packets_dropped: stats.packets_dropped,
        },
    };
    IvrOutcome { record, send_bye }
}

impl Ivr {
    async fn flow(&mut self) -> Result<(), Stop> {
        let option = self.menu().await?;
        if let Some(option) = option {
            let wants_message = self
                .settings
                .menu
                .options
                .iter()
                .any(|o| o.digit == option.digit && o.record);
            tracing::info!(
                digit = %option.digit,
                id = %option.id,
                defaulted = option.defaulted,
                "menu choice"
            );
            self.menu = Some(option);
            if wants_message {
                self.take_message().await?;
            }
        }
        let thanks = self.prompts(&["thanks", "goodbye"]);
        self.play_to_end(thanks, BargeIn::default()).await?;
        Ok(())
    }

    /// Greeting + menu, repeated up to `max_attempts`, until a valid digit.
    /// `Ok(None)` means nobody chose and `on_no_input` says hang up.
    async fn menu(&mut self) -> Result<Option<MenuSelection>, Stop> {
        let menu = self.settings.menu.clone();
        let mut pressed = String::new();
        for attempt in 0..menu.max_attempts.max(1) {
            let names: &[&str] = if attempt == 0 {
                &["greeting", "menu"]
            } else {
                &["menu"]
            };
            let prompts = self.prompts(names);
            let barge_in = self.barge_in_for(Phase::Menu, true);
            self.play(prompts, barge_in);
            let input = self
                .wait_digit(Duration::from_secs(menu.digit_timeout_secs))
                .await?;
            match input {
                Input::Speech => {
                    // The caller is already saying what they want: straight to the message
                    // of the default option, whose recording starts with their words.
                    self.stop_playing().await?;
                    if let Some(o) = menu.options.iter().find(|o| o.digit == menu.on_no_input) {
                        return Ok(Some(MenuSelection {
                            digits: pressed,
                            digit: o.digit.clone(),
                            id: o.id.clone(),
                            label: o.label.clone(),
                            defaulted: true,
                        }));
                    }
                    // (config validation makes `all` require such an option)
                    self.speech_barged_in = false;
                }
                Input::Digit(d) => {
                    pressed.push(d);
                    if let Some(o) = menu.options.iter().find(|o| o.digit.starts_with(d)) {
                        self.stop_playing().await?;
                        return Ok(Some(MenuSelection {
                            digits: pressed,
                            digit: o.digit.clone(),
                            id: o.id.clone(),
                            label: o.label.clone(),
                            defaulted: false,
                        }));
                    }
                    self.stop_playing().await?;
                    let invalid = self.prompts(&["invalid"]);
                    self.play_to_end(invalid, dtmf_only()).await?;
                }
                Input::Timeout => {
                    let no_input = self.prompts(&["no_input"]);
                    self.play_to_end(no_input, dtmf_only()).await?;
                }
            }
        }
        if menu.on_no_input == "hangup" {
            return Ok(None);
        }
        Ok(menu
            .options
            .iter()
            .find(|o| o.digit == menu.on_no_input)
            .map(|o| MenuSelection {
                digits: pressed,
                digit: o.digit.clone(),
                id: o.id.clone(),
                label: o.label.clone(),
                defaulted: true,
            }))
    }

    /// "Please speak after the tone", beep, record until `#`, end of speech, max duration.
    ///
    /// A caller who talks over the instructions or the tone (speech barge-in) is recorded
    /// at once, the recording starting with the pre-roll, so it holds the words that
    /// triggered the barge-in; the rest of the instructions and the tone are skipped.
    async fn take_message(&mut self) -> Result<(), Stop> {
        if !self.speech_barged_in {
            let prompt = self.prompts(&["record"]);
            let barge_in = self.barge_in_for(Phase::Message, true);
            self.play_to_end(prompt, barge_in).await?;
        }
        // A digit pressed during the instructions must not end the message before it starts.
        self.digits.clear();
        if !self.speech_barged_in {
            let beep = self.settings.prompts.beep();
            let barge_in = self.barge_in_for(Phase::Message, false);
            self.play_to_end(vec![beep], barge_in).await?;
        }
        let preroll = if self.speech_barged_in {
            Duration::from_millis(self.settings.ivr.barge_in_preroll_ms)
        } else {
            Duration::ZERO
        };

        let rec = &self.settings.recording;
        let day = self.info.started_at.format("%Y-%m-%d").to_string();
        let dir = self.settings.recordings_dir.join(day);
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            tracing::error!(error = %e, dir = %dir.display(), "cannot create recordings directory");
            return Ok(());
        }
        let path = dir.join(format!(
            "{}.wav",
            super::record::file_safe(&self.info.call_uid)
        ));
        self.recording_started = true;
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
            },
            preroll,
        );
        loop {
            match self.next(None).await? {
                Step::Media(MediaEvent::RecordingDone {
                    path,
                    reason,
                    duration,
                    heard_speech,
                    ..
                }) => {
                    tracing::info!(
                        ms = duration.as_millis() as u64,
                        ?reason,
                        heard_speech,
                        "message recorded"
                    );
                    self.recording = Some(recording_info(path, reason, duration, heard_speech));
                    return Ok(());
                }
                _ => continue,
            }
        }
    }

    /// On an early stop, make sure an open recording is closed and described in the record.
    ///
    /// Only when a recording was started: otherwise no `RecordingDone` ever comes, and
    /// waiting for it held every hang-up outside the message phase (max duration, shutdown,
    /// RTP timeout, caller BYE during the menu) for 3 s before our BYE and the record.
    async fn finish_recording_after(&mut self, stop: Stop) {
        if !self.recording_started || self.recording.is_some() || stop == Stop::AckTimeout {
            return;
        }
        self.media.stop_recording();
        let give_up = Instant::now() + Duration::from_secs(3);
        loop {
            tokio::select! {
                ev = self.media.next_event() => match ev {
                    Some(MediaEvent::RecordingDone { path, reason, duration, heard_speech, .. }) => {
                        self.recording = Some(recording_info(path, reason, duration, heard_speech));
                        return;
                    }
                    Some(_) => continue,
                    None => return,
                },
                _ = tokio::time::sleep_until(give_up) => return,
            }
        }
    }

    fn prompts(&self, names: &[&str]) -> Vec<SharedPrompt> {
        names
            .iter()
            .filter_map(|n| {
                let p = self.settings.prompts.get(&self.info.language, n);
                if p.is_none() {
                    tracing::warn!(prompt = n, language = %self.info.language, "prompt missing");
                }
                p
            })
            .collect()
    }

    /// What may cut a prompt of `phase` short: a digit when `dtmf`, speech as
    /// `ivr.speech_barge_in` says.
    fn barge_in_for(&self, phase: Phase, dtmf: bool) -> BargeIn {
        let ivr = &self.settings.ivr;
        let speech = match ivr.speech_barge_in.as_str() {
            "all" => true,
            "message" => phase == Phase::Message,
            _ => false,
        };
        BargeIn {
            dtmf,
            speech: speech.then(|| SpeechBargeIn {
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

    fn play(&mut self, prompts: Vec<SharedPrompt>, barge_in: BargeIn) {
        self.playing = true;
        self.playing_dtmf_barge_in = barge_in.dtmf;
        self.media.play_with(prompts, barge_in);
    }

    /// Play and wait until the queue has run out (or the caller cut it short as `barge_in`
    /// allows).
    async fn play_to_end(
        &mut self,
        prompts: Vec<SharedPrompt>,
        barge_in: BargeIn,
    ) -> Result<(), Stop> {
        self.play(prompts, barge_in);
        while self.playing {
            if let Step::Digit(d) = self.next(None).await? {
                self.digits.push_back(d);
                if barge_in.dtmf {
                    self.media.stop_playback();
                }
            }
        }
        Ok(())
    }

    async fn stop_playing(&mut self) -> Result<(), Stop> {
        if self.playing {
            self.media.stop_playback();
            while self.playing {
                if let Step::Digit(d) = self.next(None).await? {
                    self.digits.push_back(d);
                }
            }
        }
        Ok(())
    }

    /// A digit pressed while the prompt plays or within `timeout` after it ended, or the
    /// caller talking over the prompt when it allows speech barge-in.
    async fn wait_digit(&mut self, timeout: Duration) -> Result<Input, Stop> {
        let mut deadline: Option<Instant> = None;
        loop {
            if let Some(d) = self.digits.pop_front() {
                return Ok(Input::Digit(d));
            }
            if !self.playing && deadline.is_none() {
                deadline = Some(Instant::now() + timeout);
            }
            match self.next(deadline).await? {
                Step::Digit(d) => return Ok(Input::Digit(d)),
                Step::Timeout => return Ok(Input::Timeout),
                Step::Media(MediaEvent::SpeechStarted) => return Ok(Input::Speech),
                Step::Media(_) => {}
            }
        }
    }

    /// Bookkeeping for a digit, from RTP or SIP INFO: was it a barge-in?
    fn on_digit(&mut self) {
        if self.playing && self.playing_dtmf_barge_in && self.barge_in.is_none() {
            self.barge_in = Some("dtmf");
        }
    }

    /// The next thing that happens on the call. Bookkeeping for playback is done here so every
    /// waiter sees the same state.
    async fn next(&mut self, deadline: Option<Instant>) -> Result<Step, Stop> {
        loop {
            let until = deadline.map_or(self.call_deadline, |d| d.min(self.call_deadline));
            tokio::select! {
                ev = self.media.next_event() => match ev {
                    None => return Err(Stop::RtpTimeout),
                    Some(MediaEvent::RtpTimeout) => return Err(Stop::RtpTimeout),
                    Some(MediaEvent::Dtmf(d)) => {
                        self.on_digit();
                        return Ok(Step::Digit(d));
                    }
                    Some(MediaEvent::SpeechStarted) => {
                        tracing::info!("caller talked over the prompt: speech barge-in");
                        self.speech_barged_in = true;
                        self.barge_in = Some("speech");
                        return Ok(Step::Media(MediaEvent::SpeechStarted));
                    }
                    Some(MediaEvent::PlaybackDone { .. }) => {
                        self.playing = false;
                        return Ok(Step::Media(MediaEvent::PlaybackDone { interrupted: false }));
                    }
                    Some(other) => return Ok(Step::Media(other)),
                },
                sig = self.signals.recv() => match sig {
                    None | Some(CallSignal::Shutdown) => return Err(Stop::Shutdown),
                    Some(CallSignal::CallerHangup) => return Err(Stop::CallerHangup),
                    Some(CallSignal::AckTimeout) => return Err(Stop::AckTimeout),
                    Some(CallSignal::Digit(d)) => {
                        self.on_digit();
                        return Ok(Step::Digit(d));
                    }
                    Some(CallSignal::MediaUpdate(n)) => {
                        self.media.start(n.remote_rtp, n.codec, n.dtmf_pt);
                        continue;
                    }
                },
                _ = tokio::time::sleep_until(until) => {
                    if Instant::now() >= self.call_deadline {
                        return Err(Stop::MaxDuration);
                    }
                    return Ok(Step::Timeout);
                }
            }
        }
    }
}

/// A prompt only a digit may cut short.
fn dtmf_only() -> BargeIn {
    BargeIn {
        dtmf: true,
        speech: None,
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
