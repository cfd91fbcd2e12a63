//! One spooled command: a RESP array of the offset after it, then its name and
//! arguments. RESP because ferry's check-then-parse decoder frames it: a record cut short
//! by a kill reads as "more bytes needed", never as a different command, so the end of a
//! spool is simply its last complete record.

use super::SpoolError;
use bytes::{Bytes, BytesMut};
use ferry_repl::resp::{encode_command, Frame, FrameDecoder, Limits, Mode};
use ferry_repl::ReplCommand;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Appends `command`'s record to `out`.
pub fn encode(command: &ReplCommand, out: &mut BytesMut) {
    let offset = command.offset_after.to_string();
    let mut args: Vec<&[u8]> = Vec::with_capacity(command.args.len() + 1);
    args.push(offset.as_bytes());
    args.extend(command.args.iter().map(|arg| arg.as_ref()));
    encode_command(&args, out);
}

/// Reads records from the start of a stream file, as far as they are complete.
pub struct RecordReader {
    path: PathBuf,
    file: std::fs::File,
    buf: BytesMut,
    decoder: FrameDecoder,
    /// Bytes of the file taken by the records returned so far.
    consumed: u64,
}

const READ_SIZE: usize = 64 << 10;

impl RecordReader {
    pub fn open(path: &Path) -> Result<Self, SpoolError> {
        let file = std::fs::File::open(path)
            .map_err(|error| SpoolError::io("cannot open", path, error))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(Mode::Requests, Limits::default()),
            consumed: 0,
        })
    }

    /// File bytes taken by the records returned so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next complete record, or `None` at the end of what the file holds now (a
    /// partial record stays buffered for the next call, once more bytes were written).
    pub fn next_record(&mut self) -> Result<Option<ReplCommand>, SpoolError> {
        loop {
            if let Some((frame, len)) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|error| self.corrupt(error.to_string()))?
            {
                self.consumed += len as u64;
                return self.command(frame).map(Some);
            }
            let start = self.buf.len();
            self.buf.resize(start + READ_SIZE, 0);
            let read = self.file.read(&mut self.buf[start..]);
            let read = match read {
                Ok(read) => read,
                Err(error) => {
                    self.buf.truncate(start);
                    return Err(SpoolError::io("cannot read", &self.path, error));
                }
            };
            self.buf.truncate(start + read);
            if read == 0 {
                return Ok(None);
            }
        }
    }

    fn command(&self, frame: Frame) -> Result<ReplCommand, SpoolError> {
        let mut args = frame
            .command_args()
            .ok_or_else(|| self.corrupt(format!("a record is {}", frame.describe())))?;
        if args.len() < 2 {
            return Err(self.corrupt("a record without a command".into()));
        }
        let offset: Bytes = args.remove(0);
        let offset_after = std::str::from_utf8(&offset)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| self.corrupt("a record's offset is not a number".into()))?;
        Ok(ReplCommand { args, offset_after })
    }

    fn corrupt(&self, reason: String) -> SpoolError {
        SpoolError::Corrupt {
            path: self.path.display().to_string(),
            reason: format!("at byte {}: {reason}", self.consumed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn command(args: &[&str], offset_after: i64) -> ReplCommand {
        ReplCommand {
            args: args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
            offset_after,
        }
    }

    #[test]
    fn records_read_back_as_written_and_a_cut_record_waits_for_its_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.spool");
        let first = command(&["SET", "k", "v\r\nwith crlf"], 120);
        let second = command(&["DEL", "k"], 141);
        let mut bytes = BytesMut::new();
        encode(&first, &mut bytes);
        let first_len = bytes.len();
        encode(&second, &mut bytes);
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&bytes[..bytes.len() - 3]).unwrap();
        let mut reader = RecordReader::open(&path).unwrap();
        assert_eq!(reader.next_record().unwrap(), Some(first));
        assert_eq!(reader.consumed(), first_len as u64);
        assert_eq!(reader.next_record().unwrap(), None, "the second is cut");
        file.write_all(&bytes[bytes.len() - 3..]).unwrap();
        assert_eq!(reader.next_record().unwrap(), Some(second));
        assert_eq!(reader.consumed(), bytes.len() as u64);
    }

    #[test]
    fn garbage_is_a_corrupt_spool_not_a_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.spool");
        std::fs::write(&path, b"*2\r\n$3\r\nabc\r\n$3\r\nSET\r\n").unwrap();
        let error = RecordReader::open(&path)
            .unwrap()
            .next_record()
            .unwrap_err();
        assert!(
            error.to_string().contains("offset is not a number"),
            "{error}"
        );
    }
}
