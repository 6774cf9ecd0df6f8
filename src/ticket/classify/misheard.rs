//! A simulated transcriber for cross-validation: it writes some characters as others that
//! sound the same, as Whisper does at 8 kHz ("超时" for "超市", "骑火" for "起火").
//!
//! Why: the classifier reads transcripts, not clean text, and the phone-path requests are
//! few and drawn from the held-out set, which must not be tuned on. Cross-validating on
//! examples passed through this channel measures how a change copes with mis-hearings
//! without touching the held-out set. Deterministic (seeded), so runs compare.

use std::collections::HashMap;

use super::words::toneless;

/// Characters grouped by their toneless syllable, drawn from a text inventory (the training
/// examples), so that substitutes are characters people actually write.
pub struct Channel {
    by_sound: HashMap<&'static str, Vec<char>>,
    /// Probability that a character with a homophone in the inventory is replaced.
    rate: f64,
    state: u64,
}

impl Channel {
    pub fn new<'a>(inventory: impl IntoIterator<Item = &'a str>, rate: f64, seed: u64) -> Channel {
        let mut by_sound: HashMap<&'static str, Vec<char>> = HashMap::new();
        for text in inventory {
            for c in text.chars() {
                if let Some(s) = toneless(c) {
                    let group = by_sound.entry(s).or_default();
                    if !group.contains(&c) {
                        group.push(c);
                    }
                }
            }
        }
        // Sorted, so the draw depends on the seed only, not on the inventory's order.
        for group in by_sound.values_mut() {
            group.sort_unstable();
        }
        Channel {
            by_sound,
            rate,
            state: seed | 1,
        }
    }

    /// `text` as the simulated transcriber writes it.
    pub fn mishear(&mut self, text: &str) -> String {
        text.chars()
            .map(|c| {
                let Some(group) = toneless(c).and_then(|s| self.by_sound.get(s)) else {
                    return c;
                };
                let others: Vec<char> = group.iter().copied().filter(|&o| o != c).collect();
                if others.is_empty() || self.uniform() >= self.rate {
                    return c;
                }
                others[(self.next() % others.len() as u64) as usize]
            })
            .collect()
    }

    /// xorshift64: enough randomness for choosing characters, and no dependency.
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_are_replaced_by_homophones_of_the_inventory_only() {
        let mut ch = Channel::new(["超市卖过期的牛奶", "时间", "七个", "骑车"], 1.0, 7);
        let heard = ch.mishear("超市过期");
        assert_eq!(heard.chars().count(), 4);
        // 市 → 时 (shi) and 期 → 七 or 骑 (qi): the only homophones in the inventory.
        let c: Vec<char> = heard.chars().collect();
        assert_eq!(c[0], '超');
        assert_eq!(c[1], '时');
        assert_eq!(c[2], '过');
        assert!(c[3] == '七' || c[3] == '骑', "{heard}");
        // Rate 0: nothing changes; same seed: same result.
        assert_eq!(Channel::new(["市时"], 0.0, 1).mishear("超市"), "超市");
        let a = Channel::new(["市时事是"], 0.5, 3).mishear("市市市市市市");
        let b = Channel::new(["市时事是"], 0.5, 3).mishear("市市市市市市");
        assert_eq!(a, b);
        assert_ne!(a, "市市市市市市", "half of six characters replaced, seed 3");
    }
}
