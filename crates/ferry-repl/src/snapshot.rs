//! Framing of the snapshot a primary sends after `+FULLRESYNC`: either `$<len>\r\n` and
//! exactly that many bytes (no trailing CRLF; the command stream follows at once), or, for
//! a diskless transfer, `$EOF:<40-byte mark>\r\n`, the bytes, then the same mark. The mark
//! is never handed out, even when it arrives split across reads.

use bytes::Bytes;

use crate::error::{one_line, ReplError};
use crate::link::{Link, READ_SIZE};

/// Length of the end mark of a diskless transfer (the size of a run ID).
pub(crate) const MARK_LEN: usize = 40;

/// How the snapshot's end is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFraming {
    /// `$<len>`: a snapshot saved to disk first, of this many bytes.
    Sized(u64),
    /// `$EOF:<mark>`: streamed straight from the forked child (diskless).
    EndMark,
}

/// One line read where the snapshot header is expected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderLine {
    /// A bare newline: the primary is still preparing the snapshot.
    KeepAlive,
    /// The primary gave up (for example the fork failed).
    Error(String),
    Sized(u64),
    EndMark([u8; MARK_LEN]),
}

pub(crate) fn parse_header_line(line: &[u8]) -> Result<HeaderLine, String> {
    match line {
        [] => Ok(HeaderLine::KeepAlive),
        [b'-', text @ ..] => Ok(HeaderLine::Error(one_line(text))),
        [b'$', b'E', b'O', b'F', b':', mark @ ..] => mark
            .get(..MARK_LEN)
            .and_then(|mark| <[u8; MARK_LEN]>::try_from(mark).ok())
            .map(HeaderLine::EndMark)
            .ok_or_else(|| format!("end mark shorter than {MARK_LEN} bytes")),
        [b'$', digits @ ..] => std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
            .map(HeaderLine::Sized)
            .ok_or_else(|| format!("bad snapshot length {:?}", one_line(digits))),
        _ => Err(format!(
            "expected a snapshot header ($...), got {:?}; is this a Redis or Valkey primary?",
            one_line(&line[..line.len().min(60)])
        )),
    }
}

/// Where a search for the end mark got to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MarkScan {
    /// The mark starts at this index.
    Found(usize),
    /// No mark; the first `safe` bytes cannot be part of one.
    NotYet { safe: usize },
}

pub(crate) fn scan_for_mark(buf: &[u8], mark: &[u8; MARK_LEN]) -> MarkScan {
    let mut from = 0;
    while let Some(offset) = buf
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == mark[0]))
    {
        let at = from + offset;
        match buf.get(at..at + MARK_LEN) {
            Some(candidate) if candidate == mark => return MarkScan::Found(at),
            Some(_) => from = at + 1,
            // The buffer ends inside a possible mark.
            None => break,
        }
    }
    MarkScan::NotYet {
        safe: buf.len().saturating_sub(MARK_LEN - 1),
    }
}

/// Reads the snapshot body from a link, chunk by chunk.
#[derive(Debug)]
pub(crate) enum BodyReader {
    Sized { remaining: u64 },
    EndMark { mark: [u8; MARK_LEN] },
    Done,
}

const DURING: &str = "receiving the snapshot";

impl BodyReader {
    /// Reads the header, skipping keep-alive newlines.
    pub(crate) async fn start(link: &mut Link) -> Result<(BodyReader, SnapshotFraming), ReplError> {
        loop {
            let at = link.position();
            let line = link.read_line(1024, "waiting for the snapshot").await?;
            match parse_header_line(&line).map_err(|what| ReplError::protocol(what, at))? {
                HeaderLine::KeepAlive => continue,
                HeaderLine::Error(text) => return Err(ReplError::ServerError(text)),
                HeaderLine::Sized(len) => {
                    return Ok((
                        BodyReader::Sized { remaining: len },
                        SnapshotFraming::Sized(len),
                    ))
                }
                HeaderLine::EndMark(mark) => {
                    return Ok((BodyReader::EndMark { mark }, SnapshotFraming::EndMark))
                }
            }
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyReader::Done)
    }

    /// The next piece of the snapshot (at most 64 KiB), or `None` at its end.
    pub(crate) async fn next_chunk(&mut self, link: &mut Link) -> Result<Option<Bytes>, ReplError> {
        loop {
            match self {
                BodyReader::Done => return Ok(None),
                BodyReader::Sized { remaining } => {
                    if *remaining == 0 {
                        *self = BodyReader::Done;
                        return Ok(None);
                    }
                    if link.buffered().is_empty() {
                        link.fill(DURING).await?;
                        continue;
                    }
                    let wanted = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(READ_SIZE);
                    let chunk = link.take(wanted);
                    *remaining -= chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                BodyReader::EndMark { mark } => match scan_for_mark(link.buffered(), mark) {
                    MarkScan::Found(0) => {
                        link.take(MARK_LEN);
                        *self = BodyReader::Done;
                        return Ok(None);
                    }
                    MarkScan::Found(at) => return Ok(Some(link.take(at.min(READ_SIZE)))),
                    MarkScan::NotYet { safe } if safe > 0 => {
                        return Ok(Some(link.take(safe.min(READ_SIZE))))
                    }
                    MarkScan::NotYet { .. } => link.fill(DURING).await?,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK: &[u8; MARK_LEN] = b"0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn header_lines() {
        assert_eq!(parse_header_line(b""), Ok(HeaderLine::KeepAlive));
        assert_eq!(parse_header_line(b"$175"), Ok(HeaderLine::Sized(175)));
        assert_eq!(parse_header_line(b"$0"), Ok(HeaderLine::Sized(0)));
        let mut eof = b"$EOF:".to_vec();
        eof.extend_from_slice(MARK);
        assert_eq!(parse_header_line(&eof), Ok(HeaderLine::EndMark(*MARK)));
        assert!(parse_header_line(b"$EOF:abc").is_err());
        assert!(parse_header_line(b"$-1").is_err());
        assert!(parse_header_line(b"$").is_err());
        assert!(parse_header_line(b"$99999999999999999999999").is_err());
        assert!(parse_header_line(b"+OK").unwrap_err().contains("+OK"));
        assert_eq!(
            parse_header_line(b"-ERR fork failed"),
            Ok(HeaderLine::Error("ERR fork failed".into()))
        );
    }

    #[test]
    fn mark_search() {
        assert_eq!(scan_for_mark(b"", MARK), MarkScan::NotYet { safe: 0 });
        assert_eq!(
            scan_for_mark(&[b'x'; 100], MARK),
            MarkScan::NotYet { safe: 61 }
        );
        let mut data = b"REDIS0011 0123".to_vec();
        data.extend_from_slice(MARK);
        assert_eq!(scan_for_mark(&data, MARK), MarkScan::Found(14));
        // A partial mark at the end is held back.
        let partial = [&[b'x'; 50][..], &MARK[..10]].concat();
        assert_eq!(scan_for_mark(&partial, MARK), MarkScan::NotYet { safe: 21 });
    }
}
