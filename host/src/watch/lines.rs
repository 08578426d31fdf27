//! Event lines cut from a byte stream (a file, stdin, a followed file, a
//! POST body): split at `\n`, numbered from 1, never holding more than
//! [`MAX_EVENT_BYTES`] of one line. A longer line is reported as oversized
//! (with its length and first bytes), a line that is not UTF-8 as such; the
//! watcher journals both and goes on.

use super::MAX_EVENT_BYTES;

/// How many bytes of a skipped line its record shows.
pub const PREFIX_BYTES: usize = 32;

/// One line of a source.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line of UTF-8 text, without its `\n` or `\r\n`.
    Text(&'a str),
    /// Not UTF-8: `valid_up_to` bytes are, then comes an invalid sequence.
    NotUtf8 {
        prefix: &'a [u8],
        valid_up_to: usize,
        sha256: String,
    },
    /// Longer than [`MAX_EVENT_BYTES`]: only its first bytes were kept.
    Oversized { prefix: Vec<u8>, len: usize },
}

/// Cuts chunks of bytes into [`Line`]s.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// Within an oversized line: its first bytes and its length so far.
    skipping: Option<(Vec<u8>, usize)>,
    number: u64,
}

impl LineSplitter {
    /// Feed `chunk`; `each` gets every line it completes, with its number.
    pub fn push(&mut self, mut chunk: &[u8], each: &mut impl FnMut(u64, Line<'_>)) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.take(&chunk[..end], each);
            chunk = &chunk[end + 1..];
        }
        self.hold(chunk);
    }

    /// The source ended: hand on its last line if it had no `\n`.
    pub fn finish(&mut self, each: &mut impl FnMut(u64, Line<'_>)) {
        if !self.pending.is_empty() || self.skipping.is_some() {
            self.take(&[], each);
        }
    }

    /// Forget a partial line (the followed file was truncated or replaced).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.skipping = None;
    }

    fn hold(&mut self, part: &[u8]) {
        if let Some((_, len)) = &mut self.skipping {
            *len += part.len();
            return;
        }
        if self.pending.len() + part.len() > MAX_EVENT_BYTES {
            let mut prefix = std::mem::take(&mut self.pending);
            let len = prefix.len() + part.len();
            let room = PREFIX_BYTES.saturating_sub(prefix.len());
            prefix.extend_from_slice(&part[..room.min(part.len())]);
            prefix.truncate(PREFIX_BYTES);
            self.skipping = Some((prefix, len));
            return;
        }
        self.pending.extend_from_slice(part);
    }

    /// A line ends with `last` (the bytes of it not held yet).
    fn take(&mut self, last: &[u8], each: &mut impl FnMut(u64, Line<'_>)) {
        self.hold(last);
        self.number += 1;
        if let Some((prefix, len)) = self.skipping.take() {
            each(self.number, Line::Oversized { prefix, len });
            return;
        }
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        match std::str::from_utf8(&line) {
            Ok(text) => each(self.number, Line::Text(text)),
            Err(e) => each(
                self.number,
                Line::NotUtf8 {
                    prefix: &line[..line.len().min(PREFIX_BYTES)],
                    valid_up_to: e.valid_up_to(),
                    sha256: crate::digest::sha256_hex(&line),
                },
            ),
        }
        line.clear();
        self.pending = line;
    }
}

/// `bytes` as printable ASCII (`\xNN` escapes), for a journal record.
pub fn escaped(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        let mut each = |n: u64, l: Line<'_>| {
            out.push((
                n,
                match l {
                    Line::Text(t) => format!("text {t}"),
                    Line::NotUtf8 {
                        prefix,
                        valid_up_to,
                        ..
                    } => format!("utf8 {valid_up_to} {}", escaped(prefix)),
                    Line::Oversized { prefix, len } => {
                        format!("big {len} {}", escaped(&prefix[..4]))
                    }
                },
            ))
        };
        for c in chunks {
            s.push(c, &mut each);
        }
        s.finish(&mut each);
        out
    }

    #[test]
    fn lines_are_cut_bounded_and_checked() {
        let big = vec![b'x'; MAX_EVENT_BYTES + 10];
        let got = split(&[
            b"a\r\nb",
            b"c\n\n",
            b"ok \xff\xfe\n",
            &big[..MAX_EVENT_BYTES / 2],
            &big[MAX_EVENT_BYTES / 2..],
            b"\nlast",
        ]);
        assert_eq!(
            got,
            vec![
                (1, "text a".into()),
                (2, "text bc".into()),
                (3, "text ".into()),
                (4, "utf8 3 ok \\xff\\xfe".into()),
                (5, format!("big {} xxxx", MAX_EVENT_BYTES + 10)),
                (6, "text last".into()),
            ]
        );
        // Exactly the limit is still an event.
        let edge = vec![b'y'; MAX_EVENT_BYTES];
        let got = split(&[&edge, b"\n"]);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.starts_with("text yyyy"));
    }
}
