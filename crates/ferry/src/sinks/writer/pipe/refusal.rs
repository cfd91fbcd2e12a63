//! The one-line messages for what the target refused: a reply names its command and key
//! by decoding the batch payload again (nothing is kept per command in flight), and keys
//! are shown quoted and escaped so that any bytes fit on one line.

use super::error::PipeError;
use crate::server::client::one_line;
use bytes::{Bytes, BytesMut};
use ferry_repl::resp::{Frame, FrameDecoder, Limits, Mode};

/// The failure an error reply (or an EXEC whose transaction failed) is, `None` for
/// success. The reply answers command `index` of the batch; `command(n)` gives the
/// arguments of command `n`. An EXEC's array answers the commands queued just before it,
/// so its `i`th element of `len` names command `index - len + i`.
pub(super) fn refusal(
    reply: &Frame,
    index: u32,
    command: impl Fn(u32) -> Vec<Bytes>,
) -> Option<PipeError> {
    let refused = |at: u32, message: &[u8], in_transaction: bool| {
        let args = command(at);
        PipeError::Refused {
            command: args
                .first()
                .map(|n| String::from_utf8_lossy(n).to_uppercase())
                .unwrap_or_else(|| "a command".into()),
            key: first_key(&args).map(|key| show_key(key)),
            message: one_line(message),
            in_transaction,
        }
    };
    match reply {
        Frame::Error(message) | Frame::BulkError(message) => Some(refused(index, message, false)),
        // Only EXEC answers with an array that holds errors.
        Frame::Array(items) => items.iter().enumerate().find_map(|(i, item)| match item {
            Frame::Error(message) | Frame::BulkError(message) => {
                let queued = index
                    .checked_sub(items.len() as u32)
                    .map_or(index, |first| first + i as u32);
                Some(refused(queued, message, true))
            }
            _ => None,
        }),
        _ => None,
    }
}

/// `NAME "key"` (or just `NAME`), for messages about a command.
pub fn describe_command(args: &[Bytes]) -> String {
    let name = args
        .first()
        .map(|n| String::from_utf8_lossy(n).to_uppercase())
        .unwrap_or_default();
    match first_key(args) {
        Some(key) => format!("{name} {}", show_key(key)),
        None => name,
    }
}

/// The key a message names: where the command keeps its first one (after a subcommand,
/// after a script's key count), none for the commands that take no key.
fn first_key(args: &[Bytes]) -> Option<&Bytes> {
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"XGROUP" | b"XINFO" | b"OBJECT" | b"BITOP" => args.get(2),
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let count = std::str::from_utf8(args.get(2)?)
                .ok()?
                .parse::<usize>()
                .ok()?;
            (count > 0).then(|| args.get(3)).flatten()
        }
        b"FUNCTION" | b"SCRIPT" | b"FLUSHALL" | b"FLUSHDB" | b"SELECT" | b"SWAPDB" | b"MULTI"
        | b"EXEC" | b"PING" | b"PUBLISH" => None,
        _ => args.get(1),
    }
}

/// The arguments of the `index`th command in an encoded payload (empty if not found).
pub(super) fn nth_command(payload: &Bytes, index: u32) -> Vec<Bytes> {
    let mut decoder = FrameDecoder::new(Mode::Requests, Limits::default());
    let mut buf = BytesMut::from(&payload[..]);
    for _ in 0..index {
        if !matches!(decoder.decode(&mut buf), Ok(Some(_))) {
            return Vec::new();
        }
    }
    match decoder.decode(&mut buf) {
        Ok(Some((frame, _))) => frame.command_args().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A key for a message: quoted, non-printable bytes escaped.
pub fn show_key(key: &[u8]) -> String {
    let mut out = String::from("\"");
    for &byte in key.iter().take(100) {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if key.len() > 100 {
        out.push_str("...");
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::writer::pipe::Batch;

    fn payload(commands: &[&[&str]]) -> Bytes {
        let mut batch = Batch::default();
        for command in commands {
            batch.push(command);
        }
        batch.payload.freeze()
    }

    #[test]
    fn an_error_reply_names_the_command_and_key() {
        let sent = payload(&[&["SET", "a", "1"], &["lpush", "k\n1", "x"]]);
        assert_eq!(nth_command(&sent, 1)[0], "lpush");
        let reply = Frame::Error(Bytes::from_static(b"WRONGTYPE Operation against a key"));
        let message = refusal(&reply, 1, |n| nth_command(&sent, n))
            .unwrap()
            .to_string();
        assert_eq!(
            message,
            "the target refused LPUSH on key \"k\\x0a1\": WRONGTYPE Operation against a key"
        );
        assert!(refusal(&Frame::Simple("OK".into()), 0, |n| nth_command(&sent, n)).is_none());
    }

    /// The chaos soak's log read `the target refused XGROUP on key "CREATE"`: the key of a
    /// command with a subcommand comes after it, and a keyless command names none.
    #[test]
    fn the_named_key_is_where_the_command_keeps_it() {
        let sent = payload(&[
            &["XGROUP", "CREATE", "s", "g", "$"],
            &["FCALL", "f", "1", "k", "arg"],
            &["FUNCTION", "LOAD", "#!lua name=x"],
        ]);
        let reply = Frame::Error(Bytes::from_static(b"ERR no"));
        let message = |n| {
            refusal(&reply, n, |n| nth_command(&sent, n))
                .unwrap()
                .to_string()
        };
        assert_eq!(message(0), "the target refused XGROUP on key \"s\": ERR no");
        assert_eq!(message(1), "the target refused FCALL on key \"k\": ERR no");
        assert_eq!(message(2), "the target refused FUNCTION: ERR no");
    }

    #[test]
    fn an_error_inside_exec_names_the_queued_command() {
        let sent = payload(&[
            &["MULTI"],
            &["SET", "a", "1"],
            &["LPUSH", "b", "x"],
            &["EXEC"],
        ]);
        let reply = Frame::Array(vec![
            Frame::Simple("OK".into()),
            Frame::Error(Bytes::from_static(b"WRONGTYPE boom")),
        ]);
        let message = refusal(&reply, 3, |n| nth_command(&sent, n))
            .unwrap()
            .to_string();
        assert_eq!(
            message,
            "the target refused LPUSH on key \"b\": WRONGTYPE boom (inside MULTI/EXEC)"
        );
        assert!(refusal(&Frame::Array(vec![]), 3, |n| nth_command(&sent, n)).is_none());
    }
}
