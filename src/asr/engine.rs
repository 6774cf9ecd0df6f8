//! One transcription on one Whisper state: audio front end → whisper.cpp → guards.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperState};

use super::audio::{self, SpeechClip};
use super::bias::Bias;
use super::guards::{self, Rejection, SegmentStats};
use super::prompt;
use super::rescore::{self, Judge, Rescorer};
use super::text::Utf8Joiner;
use super::{AsrConfig, EmptyReason, Segment, Transcript};

/// A worker's private decoder state on the shared model.
pub struct Engine {
    ctx: Arc<WhisperContext>,
    state: WhisperState,
    cfg: Arc<AsrConfig>,
    model_name: String,
    /// The initial prompt of the job at hand, instead of the language's (a spoken menu
    /// request is primed with the menu's words); set by the pool's worker per job.
    pub(super) prompt: Option<Arc<str>>,
    /// The job at hand is decoded with the careful settings (`AsrConfig::careful_*`).
    pub(super) careful: bool,
    /// The table's words' bonus table for this model, when `keywords` and a `bias_bonus` are configured.
    pub(super) bias: Option<Arc<Bias>>,
    /// The table's words by sound and the tokenizer, for keyword rescoring of careful
    /// transcripts.
    pub(super) rescorer: Option<Arc<Rescorer>>,
}

impl Engine {
    pub fn new(
        ctx: Arc<WhisperContext>,
        cfg: Arc<AsrConfig>,
        model_name: String,
    ) -> Result<Engine, whisper_rs::WhisperError> {
        let state = ctx.create_state()?;
        Ok(Engine {
            ctx,
            state,
            cfg,
            model_name,
            prompt: None,
            careful: false,
            bias: None,
            rescorer: None,
        })
    }

    /// Transcribe one recorded message (8 kHz mono PCM). Never fails: problems become an empty
    /// transcript with a reason, so the ticket still gets filed with the recording.
    ///
    /// `context` is text already heard earlier in the same message (the previous utterances
    /// of a live-transcribed one); it follows the configured initial prompt, so Whisper
    /// continues the caller's sentence instead of starting cold at every pause.
    pub fn transcribe(&mut self, pcm_8k: &[i16], language: &str, context: &str) -> Transcript {
        let started = Instant::now();
        let audio_ms = pcm_8k.len() as u64 * 1000 / 8000;
        let mut t = Transcript {
            language: language.to_string(),
            text: String::new(),
            segments: Vec::new(),
            model: self.model_name.clone(),
            empty_reason: None,
            audio_ms,
            elapsed_ms: 0,
        };
        let x16 = audio::upsample_8k(pcm_8k);
        let spans = audio::speech_spans(&x16, &self.cfg.vad);
        if spans.is_empty() {
            t.empty_reason = Some(EmptyReason::NoSpeech);
        } else {
            let clip = audio::join_spans(&x16, &spans);
            self.run(&clip, language, context, started, &mut t);
        }
        t.elapsed_ms = started.elapsed().as_millis() as u64;
        t
    }

    fn run(
        &mut self,
        clip: &SpeechClip,
        language: &str,
        context: &str,
        started: Instant,
        t: &mut Transcript,
    ) {
        let cfg = &self.cfg;
        let clip_secs = clip.samples.len() as f32 / audio::WHISPER_RATE as f32;
        let beam_size = if self.careful {
            cfg.careful_beam_size
        } else {
            cfg.beam_size
        };
        let strategy = if beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut p = FullParams::new(strategy);
        // Careful work runs on an idle pool: every worker's threads are free.
        let threads = if self.careful {
            cfg.threads_per_worker * cfg.workers
        } else {
            cfg.threads_per_worker
        };
        p.set_n_threads(threads.max(1) as i32);
        p.set_translate(false);
        p.set_no_context(true);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        p.set_temperature(0.0);
        // Fallback re-decodes at higher temperatures: one 9 s clip took 95 s. Guards below
        // drop what fallback would have retried.
        p.set_temperature_inc(0.0);
        let auto = language == "auto";
        p.set_language(Some(if auto { "auto" } else { language }));
        // A job's own prompt (the spoken menu's words) wins over the message prompt.
        let prompt = if auto {
            String::new()
        } else if let Some(p) = self.prompt.as_deref() {
            p.to_owned()
        } else if self.careful {
            cfg.configured_prompt(language, true).to_owned()
        } else {
            cfg.prompt_with_context(language, context)
        };
        if !prompt.is_empty() {
            p.set_initial_prompt(&prompt);
        }
        // A person says at most a few tokens per second; more means the decoder is looping.
        // whisper.cpp applies the cap per segment, and a clip under 30 s is one window, so it
        // bounds the whole message.
        let max_tokens = (cfg.max_tokens_per_second * clip_secs).ceil().max(16.0) as i32;
        p.set_max_tokens(max_tokens);
        if let Some(ctx) = cfg.audio_ctx_for(clip_secs) {
            p.set_audio_ctx(ctx);
        }
        let budget = cfg.time_budget;
        let deadline = started + budget;
        // whisper-rs 0.16's `set_abort_callback_safe` hands C a pointer to a boxed trait object
        // but reads it back as the closure type (undefined behaviour; in practice the budget
        // never fired), so the raw callback is used with a pointer to `deadline`, which lives on
        // this stack frame until `full` has returned.
        // SAFETY: `past_deadline` only reads the `Instant` behind the pointer; `deadline`
        // outlives the `full` call below, the only place whisper.cpp invokes the callback.
        unsafe {
            p.set_abort_callback(Some(past_deadline));
            p.set_abort_callback_user_data(&deadline as *const Instant as *mut c_void);
        }

        // The spoken menu's own prompt is its bias: its jobs are not biased to the table.
        let bias = self
            .bias
            .as_deref()
            .filter(|_| self.prompt.is_none() && (self.careful || cfg.bias_ordinary));
        if let Some(bias) = bias {
            // SAFETY: `bias_logits` only reads the `Bias` behind the pointer (whisper.cpp may
            // call it from several threads at once, one per beam candidate: shared reads);
            // `self.bias` holds it alive until `full` has returned, the only place
            // whisper.cpp calls the hook.
            unsafe {
                p.set_filter_logits_callback(Some(bias_logits));
                p.set_filter_logits_callback_user_data(bias as *const Bias as *mut c_void);
            }
        }
        if let Err(e) = self.state.full(p, &clip.samples) {
            t.empty_reason = Some(if Instant::now() >= deadline {
                EmptyReason::TimeBudget(budget_ms(budget))
            } else {
                EmptyReason::Error(e.to_string())
            });
            return;
        }
        if auto {
            let id = self.state.full_lang_id_from_state();
            if let Some(l) = whisper_rs::get_lang_str(id) {
                t.language = l.to_string();
            }
        }
        let eot = self.ctx.token_eot();
        let mut rejected: Option<Rejection> = None;
        // Text tokens are bytes; a character may straddle two segments (see `text.rs`).
        let mut utf8 = Utf8Joiner::new();
        let mut bytes = Vec::new();
        for seg in self.state.as_iter() {
            let (mut sum_logp, mut sum_p, mut n) = (0.0f32, 0.0f32, 0usize);
            bytes.clear();
            for i in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(i) {
                    let d = tok.token_data();
                    if d.id < eot {
                        sum_logp += d.plog;
                        sum_p += d.p;
                        n += 1;
                        bytes.extend_from_slice(tok.to_bytes().unwrap_or_default());
                    }
                }
            }
            let text = utf8.push(&bytes);
            let n_f = n.max(1) as f32;
            // A short unit looping inside the segment: dropped when it is all the segment
            // says, else collapsed; then exact repeats of longer phrases.
            let text = match guards::short_loops(text.trim()) {
                Ok(text) => {
                    // Whisper's timestamps are in 10 ms units, relative to the joined clip; a
                    // segment that ran past the speech ends at the window's end, after it.
                    let clip_ms = clip.samples.len() as u64 * 1000 / audio::WHISPER_RATE as u64;
                    let t0 = seg.start_timestamp().max(0) as u64 * 10;
                    let t1 = (seg.end_timestamp().max(0) as u64 * 10).min(clip_ms);
                    guards::repeated_tail(&guards::collapse_loops(&text), t1.saturating_sub(t0))
                }
                Err(r) => {
                    tracing::debug!(text = text.trim(), "asr segment is a loop");
                    rejected.get_or_insert(r);
                    continue;
                }
            };
            // The prompt's word list read back (a hum, music): not the caller.
            let listed = cfg.configured_prompt(language, self.careful);
            if prompt::echoes_prompt(&text, listed) {
                tracing::debug!(text = %text, "asr segment echoes the prompt");
                rejected.get_or_insert(Rejection::KnownHallucination);
                continue;
            }
            let stats = SegmentStats {
                text,
                no_speech_prob: seg.no_speech_probability(),
                avg_logprob: sum_logp / n_f,
                mean_prob: sum_p / n_f,
                n_tokens: n,
            };
            tracing::debug!(?stats, "asr segment");
            if let Err(r) = guards::check(&stats, &cfg.guards) {
                rejected.get_or_insert(r);
                continue;
            }
            let text = if t.language == "zh" && cfg.homophones {
                super::homophones::repair(&fast2s::convert(&stats.text))
            } else if t.language == "zh" {
                fast2s::convert(&stats.text)
            } else {
                stats.text
            };
            // Whisper's timestamps are in 10 ms units, relative to the joined clip.
            let t0 = seg.start_timestamp().max(0) as u64 * 10;
            let t1 = seg.end_timestamp().max(0) as u64 * 10;
            // A segment identical to the one before is a loop across segments.
            if t.segments.last().is_some_and(|s: &Segment| s.text == text) {
                continue;
            }
            t.segments.push(Segment {
                start_ms: clip.to_message_ms(t0),
                end_ms: clip.to_message_ms(t1),
                text,
                confidence: stats.mean_prob,
            });
        }
        if let Err(r) = guards::check_message(t.segments.iter().map(|s| s.confidence), &cfg.guards)
        {
            tracing::debug!(segments = t.segments.len(), "asr message is all doubtful");
            t.segments.clear();
            rejected = Some(r);
        }
        if !t.segments.is_empty() {
            self.rescore(clip_secs, &t.language, &mut t.segments);
        }
        if utf8.unfinished() {
            tracing::debug!("asr text ended inside a character; the partial character is dropped");
        }
        let joiner = if t.language == "zh" || t.language == "ja" {
            ""
        } else {
            " "
        };
        t.text = t
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(joiner);
        if t.text.is_empty() {
            t.empty_reason = Some(match rejected {
                Some(r) => EmptyReason::Rejected(r),
                None => EmptyReason::NoText,
            });
        }
    }
}

impl Engine {
    /// Keyword rescoring ([`rescore`]) of a careful Mandarin transcript, when configured. Only
    /// a clip of one 30 s window: the decoder judges against the audio encoded last.
    fn rescore(&mut self, clip_secs: f32, language: &str, segments: &mut [Segment]) {
        let (Some(prior), Some(rescorer)) = (self.cfg.rescore_prior, self.rescorer.as_ref()) else {
            return;
        };
        if !self.careful || self.prompt.is_some() || language != "zh" || clip_secs > 29.5 {
            return;
        }
        let Some(lang) = whisper_rs::get_lang_id(language) else {
            return;
        };
        let mut texts: Vec<String> = segments.iter().map(|s| s.text.clone()).collect();
        // [previous text] the careful prompt's sentences, then what every decoding starts with.
        let mut start = Vec::new();
        let context = self.cfg.judge_prompt(language);
        if let Some(tokens) = rescorer.bpe.encode(context).filter(|t| !t.is_empty()) {
            start.push(self.ctx.token_prev());
            start.extend(tokens);
        }
        start.extend([
            self.ctx.token_sot(),
            self.ctx.token_lang(lang),
            self.ctx.token_transcribe(),
            self.ctx.token_not(),
        ]);
        let threads = (self.cfg.threads_per_worker * self.cfg.workers).max(1);
        let mut judge = Judge::new(&self.ctx, &rescorer.bpe, &mut self.state, threads, &start);
        match rescore::rescore(&rescorer.table, &mut judge, prior, &mut texts) {
            Ok(put) if !put.is_empty() => {
                tracing::debug!(?put, "asr keyword rescoring put listed words in");
                for (s, text) in segments.iter_mut().zip(texts) {
                    s.text = text;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "asr keyword rescoring failed; text kept"),
        }
    }
}

/// whisper.cpp abort callback: stop once the message's deadline has passed. Called from a ggml
/// compute thread between graph nodes and after each encoder/decoder pass.
unsafe extern "C" fn past_deadline(user_data: *mut c_void) -> bool {
    // SAFETY: `user_data` is the `&Instant` set in `Engine::run`, alive for the whole call.
    let deadline = unsafe { &*(user_data as *const Instant) };
    Instant::now() >= *deadline
}

/// whisper.cpp logits filter: the keyword bonuses of [`Bias`] for the decoder's next token.
/// Called once per decoder per step, possibly from several threads at once.
unsafe extern "C" fn bias_logits(
    _ctx: *mut whisper_rs::WhisperSysContext,
    _state: *mut whisper_rs::WhisperSysState,
    tokens: *const whisper_rs::WhisperTokenData,
    n_tokens: std::os::raw::c_int,
    logits: *mut f32,
    user_data: *mut c_void,
) {
    if user_data.is_null() || logits.is_null() {
        return;
    }
    // SAFETY: `user_data` is the `&Bias` set in `Engine::run`, alive for the whole call;
    // `tokens` points at the decoder's `n_tokens` tokens and `logits` at one float per
    // vocabulary entry (whisper.cpp's `whisper_process_logits`), both owned by the decoder
    // this call is for, so no other thread writes them meanwhile.
    let (bias, history, logits) = unsafe {
        let bias = &*(user_data as *const Bias);
        let history: &[whisper_rs::WhisperTokenData] = if tokens.is_null() || n_tokens <= 0 {
            &[]
        } else {
            std::slice::from_raw_parts(tokens, n_tokens as usize)
        };
        let logits = std::slice::from_raw_parts_mut(logits, bias.n_vocab);
        (bias, history, logits)
    };
    bias.apply(history.iter().map(|t| t.id), logits);
}

fn budget_ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
