//! From Whisper's tokens to text: bytes first, UTF-8 last.
//!
//! Whisper's vocabulary is byte-level BPE: a token is a run of bytes, not of characters, and a
//! Han character (three bytes in UTF-8) is often split over two or three tokens. whisper.cpp
//! turns each segment into text on its own, so a character split across a segment boundary
//! came out as U+FFFD on both sides, and one reached a ticket. Here the text tokens' bytes are
//! joined and decoded once: an unfinished character at the end of a segment is carried over to
//! the next one (and dropped if the message ends with it); bytes that are no UTF-8 at all are
//! dropped rather than replaced, so no U+FFFD is ever made here.

/// Decodes the text-token bytes of consecutive segments of one message.
#[derive(Debug, Default)]
pub struct Utf8Joiner {
    /// The start of a character the previous segment did not finish.
    carry: Vec<u8>,
}

impl Utf8Joiner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The text of the next segment, from the bytes of its text tokens in order.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(bytes);
        let mut out = String::with_capacity(buf.len());
        let mut rest = buf.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    return out;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // the input ends inside a character: the next segment finishes it
                        None => {
                            self.carry = after.to_vec();
                            return out;
                        }
                        Some(n) => rest = &after[n..],
                    }
                }
            }
        }
    }

    /// Whether the message ended inside a character (which is then dropped).
    pub fn unfinished(&self) -> bool {
        !self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_two_segments_is_whole_in_the_second() {
        // "路灯坏了": 坏 is E5 9D 8F; Whisper's tokens put E5 9D at the end of the first
        // segment and 8F at the start of the second, as byte-level BPE may.
        let text = "路灯坏了".as_bytes();
        let (first, second) = text.split_at(8);
        assert_eq!(&first[6..], &[0xE5, 0x9D]);
        // what decoding each segment on its own gives (what reached the ticket)
        assert!(String::from_utf8_lossy(first).contains('\u{FFFD}'));
        let mut j = Utf8Joiner::new();
        assert_eq!(j.push(first), "路灯");
        assert!(j.unfinished());
        assert_eq!(j.push(second), "坏了");
        assert!(!j.unfinished());
    }

    #[test]
    fn tokens_that_split_characters_inside_a_segment_join() {
        // one byte per token, as the rarest characters come
        let mut bytes = Vec::new();
        for b in "燃气泄漏".bytes() {
            bytes.push(b);
        }
        let mut j = Utf8Joiner::new();
        assert_eq!(j.push(&bytes), "燃气泄漏");
    }

    #[test]
    fn invalid_bytes_are_dropped_and_an_unfinished_end_too() {
        let mut j = Utf8Joiner::new();
        let mut bytes = "有人".as_bytes().to_vec();
        bytes.push(0xFF); // never valid in UTF-8
        bytes.extend_from_slice("受伤".as_bytes());
        bytes.extend_from_slice(&[0xE7, 0x81]); // 火 cut short, and the message ends
        let text = j.push(&bytes);
        assert_eq!(text, "有人受伤");
        assert!(!text.contains('\u{FFFD}'));
        assert!(j.unfinished());
    }

    #[test]
    fn a_lone_continuation_byte_from_the_previous_segment_does_not_eat_the_next() {
        let mut j = Utf8Joiner::new();
        assert_eq!(j.push(&[0xE5]), "");
        // the next segment does not continue it: the stray lead byte goes, the text stays
        assert_eq!(j.push("好的".as_bytes()), "好的");
        assert_eq!(j.push(b"ok"), "ok");
    }
}
