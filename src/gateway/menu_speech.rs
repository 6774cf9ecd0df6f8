//! The spoken menu's ears: a caller's short request (from the media's listening, forwarded
//! by the call layer) is transcribed on the Whisper pool in the call's language, and the
//! classification table says which menu option it points to. The menu itself
//! (`call::flow::spoken`) decides what to do with the words and the guesses.
//!
//! Categories map to menu options through the table's `menu_ids` (the same link that makes
//! a menu choice evidence for a category, read the other way): `complaint`, `policy` and
//! `service` in the shipped table. The default category is no guess (it means "nothing
//! pointed anywhere"), nor is a category without `menu_ids`. A guess's confidence is the
//! summed probability of the categories (of the classifier's best three) behind the option.
//!
//! Whisper is primed with the menu's own words ([`prompt`]): on a short request without
//! context, Whisper base wrote "我要投鼠" for "我要投诉", "自行" for "咨询" and nothing at all
//! for "转人工" with the message prompt.
//!
//! Nothing here blocks the caller: [`MenuSpeech::hear`] queues and returns; a full queue or
//! a failed decode answers "nothing heard" (the menu then asks for a key).

use crate::asr::AsrPool;
use crate::call::flow::{Guess, Heard};
use crate::call::ivr::SpokenRequest;
use crate::config::MenuConfig;
use crate::ticket::classify::Rules;
use crate::ticket::TicketService;
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct MenuSpeech {
    asr: Arc<AsrPool>,
    tickets: TicketService,
}

impl MenuSpeech {
    pub fn new(asr: Arc<AsrPool>, tickets: TicketService) -> MenuSpeech {
        MenuSpeech { asr, tickets }
    }

    /// Transcribe and classify `r`; the answer comes on the receiver. Runs on the call's
    /// task: it only queues.
    pub fn hear(&self, r: SpokenRequest, menu: &MenuConfig) -> oneshot::Receiver<Heard> {
        let (tx, rx) = oneshot::channel();
        let ms = r.pcm.len() / 8;
        let prompt = prompt(menu, &r.language);
        let Ok(pending) = self.asr.submit_prompted(r.pcm, &r.language, prompt) else {
            tracing::warn!(call_id = %r.call_id, "ASR queue full: the spoken request is not heard");
            let _ = tx.send(Heard::default());
            return rx;
        };
        let tickets = self.tickets.clone();
        let call_id = r.call_id;
        tokio::spawn(async move {
            let Ok(t) = pending.await else { return };
            let text = t.text;
            let empty = t.empty_reason.as_ref().map(ToString::to_string);
            tracing::info!(%call_id, %text, ?empty, audio_ms = ms, decode_ms = t.elapsed_ms, "spoken request transcribed");
            let heard = if text.trim().is_empty() {
                Heard::default()
            } else {
                // jieba and the model: milliseconds, but CPU: off the runtime's workers
                let rules = tickets.rules();
                tokio::task::spawn_blocking(move || heard(&rules, text))
                    .await
                    .unwrap_or_default()
            };
            let _ = tx.send(heard);
        });
        rx
    }
}

/// Whisper's initial prompt for a request in `language`: the options' labels and phrases in
/// that language's script (Han for `zh`, Latin otherwise), as a list. `None` when the menu
/// has no words in it (the language's message prompt applies).
pub fn prompt(menu: &MenuConfig, language: &str) -> Option<Arc<str>> {
    let han = |w: &str| w.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    let mut words: Vec<&str> = Vec::new();
    for o in &menu.options {
        for w in std::iter::once(&o.label).chain(&o.phrases) {
            let ours = if language == "zh" { han(w) } else { !han(w) };
            if ours && !w.trim().is_empty() && !words.contains(&w.as_str()) {
                words.push(w);
            }
        }
    }
    if words.is_empty() {
        return None;
    }
    Some(if language == "zh" {
        format!(
            "以下是普通话的句子。市民说出要办理的事情：{}。",
            words.join("、")
        )
        .into()
    } else {
        format!("A caller says what they need: {}.", words.join(", ")).into()
    })
}

/// The words and the options the classification table points them to, surest first.
pub fn heard(rules: &Rules, text: String) -> Heard {
    let a = rules.assess(&text, None);
    let default = &rules.default.id;
    let mut guesses: Vec<Guess> = Vec::new();
    for (category, p) in &a.ranking {
        if category == default {
            continue;
        }
        let Some(c) = rules.category(category) else {
            continue;
        };
        for option in &c.menu_ids {
            match guesses.iter_mut().find(|g| &g.option == option) {
                Some(g) => g.confidence += p,
                None => guesses.push(Guess {
                    option: option.clone(),
                    confidence: *p,
                }),
            }
        }
    }
    guesses.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Heard { text, guesses }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_lists_the_menus_words_in_the_callers_script() {
        let mut menu = MenuConfig::default();
        for (label, phrases) in [
            ("投诉举报", vec!["投诉", "complaint"]),
            ("人工服务", vec!["转人工", "人工", "operator"]),
        ] {
            menu.options.push(crate::config::MenuOption {
                label: label.into(),
                phrases: phrases.into_iter().map(String::from).collect(),
                ..Default::default()
            });
        }
        assert_eq!(
            prompt(&menu, "zh").as_deref(),
            Some("以下是普通话的句子。市民说出要办理的事情：投诉举报、投诉、人工服务、转人工、人工。")
        );
        assert_eq!(
            prompt(&menu, "en").as_deref(),
            Some("A caller says what they need: complaint, operator.")
        );
        assert_eq!(prompt(&MenuConfig::default(), "zh"), None);
    }

    #[test]
    fn categories_with_menu_ids_point_to_their_options_and_the_default_to_none() {
        let rules = Rules::builtin();
        let h = heard(&rules, "我想咨询一下补贴政策".into());
        assert_eq!(
            h.guesses.first().map(|g| g.option.as_str()),
            Some("policy"),
            "{h:?}"
        );
        assert!(h.guesses[0].confidence > 0.5, "{h:?}");
        // a category without menu_ids (street lights) is no guess for any option
        let h = heard(&rules, "小区的路灯坏了".into());
        assert!(h.guesses.iter().all(|g| g.confidence < 0.45), "{h:?}");
        // nothing at all: no guess, certainly not the default category's operator
        let h = heard(&rules, "喂".into());
        assert!(!h.guesses.iter().any(|g| g.option == "operator"), "{h:?}");
    }
}
