//! Framing SIP messages on a byte stream (TCP), RFC 3261 §18.3: a message is its headers up
//! to the blank line plus exactly Content-Length bytes of body, and on a stream Content-Length
//! is mandatory. Sans-IO: bytes go in with [`Framer::push`] (any split, several messages per
//! read), whole messages come out of [`Framer::next`].
//!
//! An error means the stream can no longer be framed (a missing or bad Content-Length, a
//! message over the size limit): the connection must be closed, since there is no way to
//! find where the next message starts.

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (headers and body).
    Message(Vec<u8>),
    /// An RFC 5626 keep-alive ping (CRLF CRLF): answer with a pong (CRLF).
    Ping,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    #[error("no Content-Length on a stream transport")]
    NoContentLength,
    #[error("bad Content-Length")]
    BadContentLength,
}

/// Incremental: the search for the blank line resumes where the last one stopped, and a
/// message's length is read once, when its head is complete. So a header sent a byte at a
/// time costs each byte once, not the whole buffer again on every read (a 64 KiB header
/// a byte at a time used to cost about 2·10⁹ comparisons on the media runtime).
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    /// How much of `buf` is known to hold no `CRLF CRLF` (the search resumes 3 bytes
    /// before it, since the blank line may straddle two reads).
    searched: usize,
    /// The current message's total length, once its head is complete.
    total: Option<usize>,
    /// Bytes looked at by the searches so far (the cost the incremental search bounds).
    examined: u64,
}

impl Framer {
    /// `max`: the largest message (headers and body) accepted.
    pub fn new(max: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            max,
            searched: 0,
            total: None,
            examined: 0,
        }
    }

    /// Bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that are not yet a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the blank-line search has looked at since the start.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        let total = match self.total {
            Some(total) => total,
            None => {
                if self.searched == 0 {
                    // Blank lines between messages are allowed (§7.5); CRLF CRLF is a ping.
                    let blank = self
                        .buf
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    if blank > 0 {
                        let ping = self.buf[..blank].windows(4).any(|w| w == b"\r\n\r\n");
                        self.buf.drain(..blank);
                        if ping {
                            return Ok(Some(Frame::Ping));
                        }
                    }
                }
                let from = self.searched.saturating_sub(3);
                self.examined += (self.buf.len() - from) as u64;
                let Some(at) = find(&self.buf[from..], b"\r\n\r\n") else {
                    self.searched = self.buf.len();
                    if self.buf.len() > self.max {
                        return Err(FrameError::TooLarge(self.max));
                    }
                    return Ok(None);
                };
                let end = from + at;
                let body_len = content_length(&self.buf[..end])?;
                let total = (end + 4)
                    .checked_add(body_len)
                    .ok_or(FrameError::BadContentLength)?;
                if total > self.max {
                    return Err(FrameError::TooLarge(self.max));
                }
                self.total = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
        self.searched = 0;
        self.total = None;
        Ok(Some(Frame::Message(msg)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Length (or compact `l`) value of a header block.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = std::str::from_utf8(&line[..colon]).unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let value = std::str::from_utf8(&line[colon + 1..])
                .map_err(|_| FrameError::BadContentLength)?
                .trim();
            let n: usize = value.parse().map_err(|_| FrameError::BadContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(FrameError::BadContentLength);
            }
            found = Some(n);
        }
    }
    found.ok_or(FrameError::NoContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:8890@h SIP/2.0\r\nCall-ID: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn a_message_split_at_every_byte_comes_out_whole() {
        let m = msg("v=0\r\n");
        let mut f = Framer::new(4096);
        for (i, b) in m.iter().enumerate() {
            f.push(&[*b]);
            let got = f.next().unwrap();
            if i + 1 < m.len() {
                assert_eq!(got, None, "complete too early at byte {i}");
            } else {
                assert_eq!(got, Some(Frame::Message(m.clone())));
            }
        }
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn several_messages_and_keepalives_in_one_read() {
        let (a, b) = (msg("hello"), msg(""));
        let mut data = b"\r\n\r\n".to_vec();
        data.extend_from_slice(&a);
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(&b);
        data.extend_from_slice(&msg("partial")[..10]);
        let mut f = Framer::new(4096);
        f.push(&data);
        assert_eq!(f.next().unwrap(), Some(Frame::Ping));
        assert_eq!(f.next().unwrap(), Some(Frame::Message(a)));
        assert_eq!(f.next().unwrap(), Some(Frame::Message(b)));
        assert_eq!(f.next().unwrap(), None);
        assert_eq!(f.buffered(), 10);
    }

    #[test]
    fn compact_content_length_is_understood() {
        let m = b"BYE sip:a@h SIP/2.0\r\nl: 3\r\n\r\nabc".to_vec();
        let mut f = Framer::new(4096);
        f.push(&m);
        assert_eq!(f.next().unwrap(), Some(Frame::Message(m)));
    }

    /// Issue 11: a 64 KiB header sent a byte at a time rescanned the whole buffer on every
    /// read. Each byte must now be looked at a bounded number of times.
    #[test]
    fn a_huge_header_a_byte_at_a_time_costs_each_byte_once() {
        let mut m = b"OPTIONS sip:8890@h SIP/2.0\r\n".to_vec();
        while m.len() < 60_000 {
            m.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        m.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        let mut f = Framer::new(65_535);
        for (i, b) in m.iter().enumerate() {
            f.push(&[*b]);
            let got = f.next().unwrap();
            assert_eq!(got.is_some(), i + 1 == m.len());
        }
        assert!(
            f.examined() <= 4 * m.len() as u64,
            "examined {} bytes for a {}-byte message",
            f.examined(),
            m.len()
        );
    }

    #[test]
    fn a_blank_line_split_across_reads_is_found() {
        let m = msg("");
        let cut = m.len() - 2;
        let mut f = Framer::new(4096);
        f.push(&m[..cut]);
        assert_eq!(f.next().unwrap(), None);
        f.push(&m[cut..]);
        assert_eq!(f.next().unwrap(), Some(Frame::Message(m)));
    }

    #[test]
    fn errors_that_must_close_the_connection() {
        let mut f = Framer::new(4096);
        f.push(b"INVITE sip:a@h SIP/2.0\r\nCall-ID: x\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::NoContentLength));

        let mut f = Framer::new(4096);
        f.push(b"INVITE sip:a@h SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::BadContentLength));

        let mut f = Framer::new(4096);
        f.push(b"INVITE sip:a@h SIP/2.0\r\nContent-Length: 5000\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::TooLarge(4096)));

        // Headers that never end are refused once they pass the limit, not buffered forever.
        let mut f = Framer::new(64);
        f.push(&[b'a'; 65]);
        assert_eq!(f.next(), Err(FrameError::TooLarge(64)));
    }
}
