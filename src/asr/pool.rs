//! A fixed pool of Whisper worker threads with a bounded queue.
//!
//! OS threads, not tokio tasks: a transcription is seconds of blocking CPU and would starve the
//! runtime that carries the calls' audio. The model is loaded once and shared; each worker has
//! its own decoder state (whisper.cpp states are not shareable). Back-pressure is explicit: a
//! full queue hands the audio back to the caller at once instead of growing without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use whisper_rs::{WhisperContext, WhisperContextParameters};

use super::bias::Bias;
use super::bpe::Bpe;
use super::engine::Engine;
use super::rescore::{Rescorer, SoundTable};
use super::{AsrConfig, AsrError, Transcript};

struct Job {
    pcm_8k: Arc<[i16]>,
    language: String,
    /// Initial prompt instead of the language's (see [`AsrPool::submit_prompted`]).
    prompt: Option<Arc<str>>,
    /// Decoded with the careful settings (see [`AsrPool::submit_careful`]).
    careful: bool,
    context: Context,
    reply: oneshot::Sender<Transcript>,
}

/// What a job knows of the message around it.
enum Context {
    /// A whole message.
    Whole,
    /// Part `index` of a message whose parts are decoded one by one (live transcription).
    Part(MessageContext, usize),
}

/// The texts of one message's parts, filled in by the workers as they finish them, so that a
/// part gets the text of the parts before it as context when its decoding *starts* (they
/// are usually done by then: the caller was still talking), not when it was queued.
#[derive(Clone, Debug, Default)]
pub struct MessageContext(Arc<Mutex<Vec<Option<String>>>>);

impl MessageContext {
    /// The texts of parts `0..index`, as far as they are contiguous from the start.
    pub fn text_before(&self, index: usize) -> String {
        let Ok(parts) = self.0.lock() else {
            return String::new();
        };
        parts
            .iter()
            .take(index)
            .map_while(|p| p.as_deref())
            .collect()
    }

    fn set(&self, index: usize, text: &str) {
        if let Ok(mut parts) = self.0.lock() {
            if parts.len() <= index {
                parts.resize(index + 1, None);
            }
            parts[index] = Some(text.to_string());
        }
    }
}

/// The queue was full; the audio is handed back so the caller can retry or file without text.
#[derive(Debug)]
pub struct QueueFull {
    pub pcm_8k: Arc<[i16]>,
}

impl std::fmt::Display for QueueFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ASR queue full")
    }
}

impl std::error::Error for QueueFull {}

/// Running ASR workers. Dropping the pool lets queued jobs finish, then joins the workers.
pub struct AsrPool {
    tx: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// Jobs queued or being decoded (see [`AsrPool::is_idle`]).
    pending: Arc<AtomicUsize>,
    cfg: Arc<AsrConfig>,
    model_name: String,
}

static LOG_HOOK: Once = Once::new();

impl AsrPool {
    /// Load the model once and start `cfg.workers` threads.
    pub fn start(cfg: AsrConfig) -> Result<AsrPool, AsrError> {
        if cfg.workers == 0 || cfg.threads_per_worker == 0 {
            return Err(AsrError::Config(
                "workers and threads_per_worker must be at least 1".into(),
            ));
        }
        if !cfg.model_path.is_file() {
            return Err(AsrError::ModelMissing(cfg.model_path.clone()));
        }
        // Route whisper.cpp's stderr chatter into tracing.
        LOG_HOOK.call_once(whisper_rs::install_logging_hooks);
        let path = cfg.model_path.clone();
        let model_err = |source| AsrError::Model {
            path: path.clone(),
            source,
        };
        let mut params = WhisperContextParameters::default();
        params.flash_attn(cfg.flash_attn);
        let ctx = WhisperContext::new_with_params(&cfg.model_path, params).map_err(model_err)?;
        let ctx = Arc::new(ctx);
        let model_name = cfg
            .model_path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Text tokens' bytes by id: the keyword bias's and the rescoring tokenizer's table.
        let token_bytes = || -> Vec<Box<[u8]>> {
            (0..ctx.token_eot())
                .map(|id| ctx.token_to_bytes(id).unwrap_or_default().into())
                .collect()
        };
        let words = (!cfg.keywords.is_empty()).then_some(&cfg.keywords);
        let bias = words.zip(cfg.bias_bonus).map(|(words, bonus)| {
            let n_vocab = ctx.n_vocab().max(0) as usize;
            Arc::new(Bias::new(words, token_bytes(), n_vocab, bonus))
        });
        let rescorer = words.filter(|_| cfg.rescore_prior.is_some()).map(|words| {
            Arc::new(Rescorer {
                table: SoundTable::new(words),
                bpe: Bpe::new(&token_bytes()),
            })
        });
        let cfg = Arc::new(cfg);
        let (tx, rx) = mpsc::sync_channel::<Job>(cfg.queue_depth);
        let rx = Arc::new(Mutex::new(rx));
        let pending = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::with_capacity(cfg.workers);
        for i in 0..cfg.workers {
            let mut engine =
                Engine::new(ctx.clone(), cfg.clone(), model_name.clone()).map_err(model_err)?;
            engine.bias = bias.clone();
            engine.rescorer = rescorer.clone();
            let (rx, pending) = (rx.clone(), pending.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("asr-{i}"))
                    .spawn(move || worker(engine, rx, pending))?,
            );
        }
        Ok(AsrPool {
            tx: Some(tx),
            workers,
            pending,
            cfg,
            model_name,
        })
    }

    /// Queue a recorded message (8 kHz mono PCM) for transcription in `language` (ISO 639-1,
    /// `auto` to detect, empty for the configured default). Never blocks: when the queue is full
    /// the audio comes back in [`QueueFull`]. The receiver yields exactly one [`Transcript`]
    /// (await it, or `blocking_recv()` outside the runtime).
    pub fn submit(
        &self,
        pcm_8k: Arc<[i16]>,
        language: &str,
    ) -> Result<oneshot::Receiver<Transcript>, QueueFull> {
        self.queue(pcm_8k, language, Context::Whole, None, false)
    }

    /// [`submit`](Self::submit) with the careful decoding: `careful_beam_size`, the
    /// `careful_prompts`, and the threads of every worker. For work that waits for an idle
    /// pool (a message's second pass), where accuracy is worth more than the seconds.
    pub fn submit_careful(
        &self,
        pcm_8k: Arc<[i16]>,
        language: &str,
    ) -> Result<oneshot::Receiver<Transcript>, QueueFull> {
        self.queue(pcm_8k, language, Context::Whole, None, true)
    }

    /// [`submit`](Self::submit) with Whisper's initial prompt given (`None`: the language's):
    /// a short request said to the menu is heard far better when the decoder is primed with
    /// the menu's words ("投诉举报、政策咨询…") than with the message prompt.
    pub fn submit_prompted(
        &self,
        pcm_8k: Arc<[i16]>,
        language: &str,
        prompt: Option<Arc<str>>,
    ) -> Result<oneshot::Receiver<Transcript>, QueueFull> {
        self.queue(pcm_8k, language, Context::Whole, prompt, false)
    }

    /// Queue part `index` of a message decoded part by part: it gets the text of the parts
    /// before it in `message` as context (see [`AsrConfig::context_chars`]), and leaves its
    /// own text there for the parts after it.
    pub fn submit_part(
        &self,
        pcm_8k: Arc<[i16]>,
        language: &str,
        message: &MessageContext,
        index: usize,
    ) -> Result<oneshot::Receiver<Transcript>, QueueFull> {
        self.queue(
            pcm_8k,
            language,
            Context::Part(message.clone(), index),
            None,
            false,
        )
    }

    fn queue(
        &self,
        pcm_8k: Arc<[i16]>,
        language: &str,
        context: Context,
        prompt: Option<Arc<str>>,
        careful: bool,
    ) -> Result<oneshot::Receiver<Transcript>, QueueFull> {
        let (reply, rx) = oneshot::channel();
        let language = if language.is_empty() {
            self.cfg.language.clone()
        } else {
            language.to_string()
        };
        let job = Job {
            pcm_8k,
            language,
            prompt,
            careful,
            context,
            reply,
        };
        let Some(tx) = &self.tx else {
            return Err(QueueFull { pcm_8k: job.pcm_8k });
        };
        // Counted before it is sent, so a worker never takes it below zero.
        self.pending.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                Err(QueueFull { pcm_8k: job.pcm_8k })
            }
        }
    }

    /// Model file name (e.g. `ggml-base.bin`), as reported in transcripts.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    pub fn config(&self) -> &AsrConfig {
        &self.cfg
    }

    /// No job queued or being decoded: work that may wait (a message's second pass) takes
    /// a worker only then, so that it never delays a caller's own transcription.
    pub fn is_idle(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}

impl Drop for AsrPool {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(mut engine: Engine, rx: Arc<Mutex<Receiver<Job>>>, pending: Arc<AtomicUsize>) {
    loop {
        // Hold the lock only to take a job, not while transcribing it.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        engine.prompt = job.prompt;
        engine.careful = job.careful;
        let t = match &job.context {
            Context::Whole => engine.transcribe(&job.pcm_8k, &job.language, ""),
            Context::Part(message, index) => {
                let before = message.text_before(*index);
                let t = engine.transcribe(&job.pcm_8k, &job.language, &before);
                message.set(*index, &t.text);
                t
            }
        };
        pending.fetch_sub(1, Ordering::SeqCst);
        // The caller may have hung up; nothing to do then.
        let _ = job.reply.send(t);
    }
}
