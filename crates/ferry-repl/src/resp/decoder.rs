//! The incremental decoder. A first pass finds where the next frame ends; it remembers its
//! progress between calls, so a command with a million arguments arriving in many reads is
//! scanned once, not once per read. A second pass over the complete bytes builds the
//! [`Frame`] with zero-copy slices.

use bytes::{Bytes, BytesMut};

use super::inline::split_inline;
use super::token::{read_token, AggregateKind, Token};
use super::{Frame, Limits, Mode, ProtoError};

/// Decodes a stream of frames from a growing buffer.
///
/// After an `Err` the stream is out of sync: drop the connection (and the decoder).
#[derive(Debug)]
pub struct FrameDecoder {
    mode: Mode,
    limits: Limits,
    /// Scan progress within the frame being received: where the next unread element
    /// starts, and how many children each open aggregate still expects.
    scan_pos: usize,
    open_aggregates: Vec<u64>,
}

impl FrameDecoder {
    /// A decoder for a stream in `mode`, refusing frames beyond `limits`.
    pub fn new(mode: Mode, limits: Limits) -> Self {
        FrameDecoder {
            mode,
            limits,
            scan_pos: 0,
            open_aggregates: Vec::new(),
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes one complete frame off the front of `buf`, returning it with its length on the
    /// wire. `Ok(None)`: more bytes are needed (nothing is consumed). The caller must only
    /// append to `buf` between calls that return `Ok(None)`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<(Frame, usize)>, ProtoError> {
        let Some(frame_len) = self.scan(buf)? else {
            return Ok(None);
        };
        let wire = buf.split_to(frame_len).freeze();
        let mut pos = 0;
        let frame = self.build(&wire, &mut pos, true)?;
        if pos != frame_len {
            return Err(ProtoError::new("frame length mismatch", pos));
        }
        Ok(Some((frame, frame_len)))
    }

    /// How many bytes the frame at the start of `buf` spans, once it is all there.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtoError> {
        loop {
            let top_level = self.open_aggregates.is_empty();
            let start = self.scan_pos;
            let Some((token, next)) = read_token(buf, start, top_level, self.mode, &self.limits)?
            else {
                return Ok(None);
            };
            self.scan_pos = next;
            if let Token::Aggregate { children, .. } = token {
                if children > 0 {
                    if self.open_aggregates.len() >= self.limits.max_depth {
                        return Err(ProtoError::new(
                            format!("aggregates nested deeper than {}", self.limits.max_depth),
                            start,
                        ));
                    }
                    self.open_aggregates.push(children);
                    continue;
                }
            }
            // One element is complete; close every aggregate it completes.
            loop {
                match self.open_aggregates.last_mut() {
                    None => {
                        let frame_len = self.scan_pos;
                        self.scan_pos = 0;
                        return Ok(Some(frame_len));
                    }
                    Some(remaining) => {
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                        self.open_aggregates.pop();
                    }
                }
            }
        }
    }

    /// Builds the element at `pos` of a buffer the scanner found complete. Recursion depth
    /// is bounded by the scanner's `max_depth` check.
    fn build(&self, wire: &Bytes, pos: &mut usize, top_level: bool) -> Result<Frame, ProtoError> {
        let (token, next) = read_token(wire, *pos, top_level, self.mode, &self.limits)?
            .ok_or_else(|| ProtoError::new("frame ends early", *pos))?;
        *pos = next;
        let frame = match token {
            Token::Simple(r) => Frame::Simple(wire.slice(r)),
            Token::Error(r) => Frame::Error(wire.slice(r)),
            Token::Integer(n) => Frame::Integer(n),
            Token::Bulk(r) => Frame::Bulk(wire.slice(r)),
            Token::NullBulk => Frame::NullBulk,
            Token::NullArray => Frame::NullArray,
            Token::Null => Frame::Null,
            Token::Boolean(b) => Frame::Boolean(b),
            Token::Double(r) => Frame::Double(wire.slice(r)),
            Token::BigNumber(r) => Frame::BigNumber(wire.slice(r)),
            Token::BulkError(r) => Frame::BulkError(wire.slice(r)),
            Token::Verbatim { format, text } => Frame::Verbatim {
                format: wire.slice(format),
                text: wire.slice(text),
            },
            Token::Inline(r) => {
                let line_start = r.start;
                let line = wire.get(r).unwrap_or_default();
                let args =
                    split_inline(line).map_err(|e| ProtoError::new(e.what, line_start + e.at))?;
                Frame::Inline(args)
            }
            Token::Aggregate { kind, children } => {
                self.build_aggregate(wire, pos, kind, children)?
            }
        };
        Ok(frame)
    }

    fn build_aggregate(
        &self,
        wire: &Bytes,
        pos: &mut usize,
        kind: AggregateKind,
        children: u64,
    ) -> Result<Frame, ProtoError> {
        // Never trust a count for preallocation; the bytes are there, but cap anyway.
        let capacity = usize::try_from(children).unwrap_or(usize::MAX).min(1024);
        match kind {
            AggregateKind::Map | AggregateKind::Attribute => {
                let mut pairs = Vec::with_capacity(capacity / 2);
                for _ in 0..children / 2 {
                    let key = self.build(wire, pos, false)?;
                    let value = self.build(wire, pos, false)?;
                    pairs.push((key, value));
                }
                Ok(if kind == AggregateKind::Map {
                    Frame::Map(pairs)
                } else {
                    Frame::Attribute(pairs)
                })
            }
            AggregateKind::Array | AggregateKind::Set | AggregateKind::Push => {
                let mut items = Vec::with_capacity(capacity);
                for _ in 0..children {
                    items.push(self.build(wire, pos, false)?);
                }
                Ok(match kind {
                    AggregateKind::Array => Frame::Array(items),
                    AggregateKind::Set => Frame::Set(items),
                    _ => Frame::Push(items),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mode: Mode, input: &[u8]) -> Result<Vec<Frame>, ProtoError> {
        let mut decoder = FrameDecoder::new(mode, Limits::default());
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        while let Some((frame, _)) = decoder.decode(&mut buf)? {
            frames.push(frame);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(frames)
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn decodes_resp2_types() {
        let frames = decode_all(
            Mode::Replies,
            b"+OK\r\n-ERR no\r\n:-5\r\n$3\r\nabc\r\n$0\r\n\r\n$-1\r\n*-1\r\n*2\r\n$1\r\na\r\n:1\r\n*0\r\n",
        )
        .unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Simple(Bytes::from_static(b"OK")),
                Frame::Error(Bytes::from_static(b"ERR no")),
                Frame::Integer(-5),
                bulk("abc"),
                bulk(""),
                Frame::NullBulk,
                Frame::NullArray,
                Frame::Array(vec![bulk("a"), Frame::Integer(1)]),
                Frame::Array(vec![]),
            ]
        );
    }

    #[test]
    fn decodes_resp3_types() {
        let frames = decode_all(
            Mode::Replies,
            b"_\r\n#t\r\n,1.5\r\n,-inf\r\n(123456789012345678901234567890\r\n!3\r\nbad\r\n=7\r\ntxt:abc\r\n%1\r\n+k\r\n:1\r\n~1\r\n#f\r\n|1\r\n+a\r\n+b\r\n>1\r\n+msg\r\n",
        )
        .unwrap();
        assert_eq!(frames.len(), 11);
        assert_eq!(frames[0], Frame::Null);
        assert_eq!(frames[1], Frame::Boolean(true));
        assert_eq!(frames[3], Frame::Double(Bytes::from_static(b"-inf")));
        assert_eq!(
            frames[6],
            Frame::Verbatim {
                format: Bytes::from_static(b"txt"),
                text: Bytes::from_static(b"abc")
            }
        );
        assert_eq!(
            frames[7],
            Frame::Map(vec![(
                Frame::Simple(Bytes::from_static(b"k")),
                Frame::Integer(1)
            )])
        );
        assert!(matches!(frames[9], Frame::Attribute(_)));
        assert!(matches!(frames[10], Frame::Push(_)));
    }

    #[test]
    fn bare_newlines_are_keepalives() {
        let frames = decode_all(Mode::Replies, b"\n\r\n+PONG\r\n").unwrap();
        assert!(frames[0].is_keepalive() && frames[1].is_keepalive());
        assert_eq!(frames[2], Frame::Simple(Bytes::from_static(b"PONG")));
    }

    #[test]
    fn request_mode_reads_inline_commands() {
        let frames = decode_all(Mode::Requests, b"PING\r\nSET k \"a b\"\n+x\r\n").unwrap();
        let args: Vec<_> = frames.iter().map(|f| f.command_args().unwrap()).collect();
        assert_eq!(args[0], vec![Bytes::from_static(b"PING")]);
        assert_eq!(args[1].len(), 3);
        assert_eq!(&args[1][2][..], b"a b");
        // In request mode a '+' line is an inline command, as Redis reads it.
        assert_eq!(&args[2][0][..], b"+x");
    }

    #[test]
    fn incomplete_input_needs_more_and_consumes_nothing() {
        let full = b"*2\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            let mut decoder = FrameDecoder::new(Mode::Replies, Limits::default());
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(decoder.decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut);
            buf.extend_from_slice(&full[cut..]);
            let (frame, len) = decoder.decode(&mut buf).unwrap().unwrap();
            assert_eq!(len, full.len());
            assert_eq!(frame, Frame::Array(vec![bulk("SET"), bulk("hello")]));
        }
    }

    fn error_of(input: &[u8], limits: Limits) -> ProtoError {
        let mut decoder = FrameDecoder::new(Mode::Replies, limits);
        let mut buf = BytesMut::from(input);
        loop {
            match decoder.decode(&mut buf) {
                Err(e) => return e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error for {input:?}"),
            }
        }
    }

    #[test]
    fn invalid_input_names_what_and_where() {
        let e = error_of(b"*1\r\n$x\r\n", Limits::default());
        assert_eq!((e.what.as_str(), e.at), ("invalid bulk length", 5));
        let e = error_of(b"$3\r\nabcXY", Limits::default());
        assert_eq!(
            (e.what.as_str(), e.at),
            ("bulk string not followed by CRLF", 7)
        );
        let e = error_of(b"+ok\rX", Limits::default());
        assert_eq!((e.what.as_str(), e.at), ("CR not followed by LF", 3));
        let e = error_of(b"*1\r\n@\r\n", Limits::default());
        assert_eq!(e.at, 4);
        assert!(e.what.contains("0x40"), "{}", e.what);
        let e = error_of(b"*-2\r\n", Limits::default());
        assert!(e.what.contains("-2"));
        let e = error_of(b"#x\r\n", Limits::default());
        assert!(e.what.contains("boolean"));
    }

    #[test]
    fn huge_lengths_are_refused_before_any_allocation() {
        let e = error_of(b"$536870913\r\n", Limits::default());
        assert!(e.what.contains("above the limit"), "{}", e.what);
        let e = error_of(b"$99999999999999999999\r\n", Limits::default());
        assert_eq!(e.what, "invalid bulk length");
        let e = error_of(b"*2147483648\r\n", Limits::default());
        assert!(e.what.contains("aggregate length"));
        // A legal but huge count only needs more bytes: nothing is preallocated from it.
        let mut decoder = FrameDecoder::new(Mode::Replies, Limits::default());
        let mut buf = BytesMut::from(&b"*2147483647\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }

    #[test]
    fn long_lines_and_deep_nesting_are_refused() {
        let limits = Limits {
            max_line_len: 8,
            max_depth: 3,
            ..Limits::default()
        };
        let e = error_of(b"+0123456789", limits.clone());
        assert!(e.what.contains("longer than 8"));
        let e = error_of(b"0123456789", limits.clone());
        assert!(e.what.contains("inline line longer"));
        let e = error_of(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", limits.clone());
        assert!(e.what.contains("nested deeper"));
        assert_eq!(e.at, 12);
        let fine = b"*1\r\n*1\r\n*1\r\n:1\r\n";
        let mut decoder = FrameDecoder::new(Mode::Replies, limits);
        assert!(decoder
            .decode(&mut BytesMut::from(&fine[..]))
            .unwrap()
            .is_some());
    }

    #[test]
    fn verbatim_needs_a_format() {
        let e = error_of(b"=2\r\nab\r\n", Limits::default());
        assert!(e.what.contains("verbatim"));
    }
}
