//! Server-sent events, as the Messages API streams its answers: an incremental parser fed the
//! body's chunks as they arrive (the HTML living standard's rules: lines end in `\n`, `\r\n` or
//! `\r`; `field: value` with one leading space dropped; `data` lines joined by `\n`; a comment
//! starts with `:`; a blank line dispatches; an event without data is not dispatched).
//!
//! Written for the hot path of a fan-out: one buffer per stream, no parser combinators, and an
//! event's `data` is the only allocation it costs.

/// One dispatched event.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` field (`message` when the event names none).
    pub event: String,
    pub data: String,
}

#[derive(Default)]
pub(crate) struct Parser {
    /// Bytes received, line ends normalised to `\n`; those before `start` are dispatched.
    buf: Vec<u8>,
    /// Where the first event not yet dispatched begins (the buffer is emptied, or its tail
    /// moved down, only when a chunk arrives: not once per event).
    start: usize,
    /// Where the search for the next blank line resumes.
    scanned: usize,
    /// The last chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
}

impl Parser {
    /// Adds a chunk of the stream.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        let mut chunk = chunk;
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        if !chunk.contains(&b'\r') {
            self.buf.extend_from_slice(chunk);
            return;
        }
        let mut bytes = chunk.iter().copied().peekable();
        while let Some(b) = bytes.next() {
            if b == b'\r' {
                self.buf.push(b'\n');
                match bytes.peek() {
                    Some(b'\n') => {
                        bytes.next();
                    }
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            } else {
                self.buf.push(b);
            }
        }
    }

    /// The next complete event, if one has arrived.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        loop {
            let mut from = self.scanned.max(self.start);
            let end = loop {
                let Some(at) = self.buf[from..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|p| from + p)
                else {
                    self.scanned = self.buf.len().saturating_sub(1).max(self.start);
                    return None;
                };
                if self.buf.get(at + 1) == Some(&b'\n') {
                    break at;
                }
                from = at + 1;
            };
            let event = parse_block(&self.buf[self.start..end]);
            self.start = end + 2;
            self.scanned = self.start;
            if let Some(e) = event {
                return Some(e);
            }
        }
    }

    /// Bytes of a partial event still waiting for its end.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// One event's lines (without the blank line that ended it). `None`: nothing to dispatch.
fn parse_block(block: &[u8]) -> Option<Event> {
    let text = match std::str::from_utf8(block) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(block),
    };
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    Some(Event {
        event: event.unwrap_or_else(|| "message".to_string()),
        data: data?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c);
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    fn ev(event: &str, data: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\nevent: ping\ndata: {}\n\n";
        let whole = all(&[stream]);
        assert_eq!(
            whole,
            vec![ev("message_start", "{\"a\":1}"), ev("ping", "{}")]
        );
        for cut in 1..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(all(&[a, b]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn line_ends_comments_multi_line_data_and_defaults() {
        assert_eq!(
            all(&[b": keep-alive\r\nevent:x\r\ndata:one\r\ndata:  two\r\n\r\ndata: bare\r\rid: 7\nevent: empty\n\n"]),
            vec![ev("x", "one\n two"), ev("message", "bare")]
        );
        // `\r` at the end of one chunk and `\n` at the start of the next are one line end.
        assert_eq!(
            all(&[b"data: a\r", b"\n\r", b"\n"]),
            vec![ev("message", "a")]
        );
    }

    #[test]
    fn chunks_after_everything_was_dispatched_start_afresh() {
        let mut p = Parser::default();
        p.push(b"data: 1\n\n");
        assert_eq!(p.next_event(), Some(ev("message", "1")));
        assert_eq!(p.next_event(), None);
        p.push(b"data: 2\n");
        assert_eq!(p.next_event(), None);
        p.push(b"\ndata: 3\n\nda");
        assert_eq!(p.next_event(), Some(ev("message", "2")));
        assert_eq!(p.next_event(), Some(ev("message", "3")));
        assert_eq!(p.next_event(), None);
        assert_eq!(p.pending(), 2);
        p.push(b"ta: 4\n\n");
        assert_eq!(p.next_event(), Some(ev("message", "4")));
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn an_unfinished_event_waits() {
        let mut p = Parser::default();
        p.push(b"event: message_stop\ndata: {}\n");
        assert_eq!(p.next_event(), None);
        assert!(p.pending() > 0);
        p.push(b"\n");
        assert_eq!(p.next_event(), Some(ev("message_stop", "{}")));
        assert_eq!(p.pending(), 0);
    }
}
