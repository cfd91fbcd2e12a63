//! The commands of a batch payload, which ferry encoded itself (arrays of bulk strings,
//! [`ferry_repl::resp::encode_command`]): each with its bytes on the wire, to pass on
//! unchanged, and its arguments as slices of the same buffer. Reading only that shape,
//! without building frames, is what lets a cluster target re-batch every command by slot
//! at the speed the target takes them.

use bytes::Bytes;
use std::ops::Range;

/// Where a payload is not the commands ferry encodes. A payload ferry built never is, so
/// each means a bug ("internal:"), never something to skip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    #[error("internal: a batch's argument at byte {at} is cut")]
    CutArgument { at: usize },
    #[error(
        "internal: a batch holds something that is not a command at byte {at} (expected \
         {expected:?})"
    )]
    NotACommand { at: usize, expected: char },
}

/// One command of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedCommand {
    /// Where it lies in the payload, header to last CRLF.
    pub wire: Range<usize>,
    pub args: Vec<Bytes>,
}

/// The commands of `payload`, in order; an error ends them.
pub fn commands(payload: &Bytes) -> impl Iterator<Item = Result<WalkedCommand, WalkError>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= payload.len() {
            return None;
        }
        let walked = command_at(payload, at);
        at = match &walked {
            Ok(command) => command.wire.end,
            Err(_) => payload.len(),
        };
        Some(walked)
    })
}

fn command_at(payload: &Bytes, start: usize) -> Result<WalkedCommand, WalkError> {
    let (count, mut at) = header(payload, start, b'*')?;
    let mut args = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let (len, body) = header(payload, at, b'$')?;
        let end = body
            .checked_add(len)
            .filter(|&end| {
                end.checked_add(2).and_then(|after| payload.get(end..after)) == Some(b"\r\n")
            })
            .ok_or(WalkError::CutArgument { at })?;
        args.push(payload.slice(body..end));
        at = end + 2;
    }
    Ok(WalkedCommand {
        wire: start..at,
        args,
    })
}

/// `<kind><decimal>\r\n` at `at`: the number and where what follows begins.
fn header(payload: &[u8], at: usize, kind: u8) -> Result<(usize, usize), WalkError> {
    let malformed = || WalkError::NotACommand {
        at,
        expected: kind as char,
    };
    if payload.get(at) != Some(&kind) {
        return Err(malformed());
    }
    let mut value: usize = 0;
    let mut pos = at + 1;
    while let Some(&digit) = payload.get(pos).filter(|b| b.is_ascii_digit()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(usize::from(digit - b'0')))
            .ok_or_else(malformed)?;
        pos += 1;
    }
    if pos == at + 1 || payload.get(pos..pos + 2) != Some(b"\r\n") {
        return Err(malformed());
    }
    Ok((value, pos + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::writer::pipe::Batch;
    use proptest::prelude::*;

    fn payload(commands: &[Vec<Vec<u8>>]) -> Bytes {
        let mut batch = Batch::default();
        for command in commands {
            batch.push(command);
        }
        batch.payload.freeze()
    }

    proptest! {
        #[test]
        fn every_command_comes_back_with_its_wire_bytes(
            sent in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
                0..20,
            )
        ) {
            let wire = payload(&sent);
            let walked: Vec<WalkedCommand> = commands_of(&wire);
            prop_assert_eq!(walked.len(), sent.len());
            let mut rebuilt = Vec::new();
            for (walked, command) in walked.iter().zip(&sent) {
                let args: Vec<&[u8]> = walked.args.iter().map(|a| a.as_ref()).collect();
                let command: Vec<&[u8]> = command.iter().map(|a| a.as_slice()).collect();
                prop_assert_eq!(args, command);
                rebuilt.extend_from_slice(&wire[walked.wire.clone()]);
            }
            prop_assert_eq!(rebuilt.as_slice(), wire.as_ref());
        }

        #[test]
        fn a_cut_or_garbled_payload_is_an_error_not_a_panic(
            sent in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..10), 1..4),
                1..5,
            ),
            cut in any::<prop::sample::Index>(),
            garble in any::<(prop::sample::Index, u8)>(),
        ) {
            let wire = payload(&sent).to_vec();
            let short = Bytes::from(wire[..cut.index(wire.len())].to_vec());
            let _ = commands(&short).count();
            let mut changed = wire.clone();
            let at = garble.0.index(changed.len());
            changed[at] = garble.1;
            let _ = commands(&Bytes::from(changed)).count();
        }
    }

    fn commands_of(wire: &Bytes) -> Vec<WalkedCommand> {
        commands(wire).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_truncated_command_is_named() {
        let wire = payload(&[vec![b"SET".to_vec(), b"k".to_vec(), b"value".to_vec()]]);
        let cut = wire.slice(..wire.len() - 3);
        let error = commands(&cut).last().unwrap().unwrap_err();
        assert_eq!(error, WalkError::CutArgument { at: 20 });
        assert_eq!(
            error.to_string(),
            "internal: a batch's argument at byte 20 is cut"
        );
        let error = commands(&Bytes::from_static(b"+OK\r\n")).next().unwrap();
        assert_eq!(
            error.unwrap_err().to_string(),
            "internal: a batch holds something that is not a command at byte 0 (expected '*')"
        );
    }
}
