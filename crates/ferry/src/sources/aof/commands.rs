//! The commands of one AOF file, read in 64 KiB blocks (memory bounded by the largest
//! command, not the file): RESP arrays framed by ferry-repl's decoder, `#` annotation
//! lines (`#TS:<seconds>`) skipped, anything else refused with its byte offset.

use super::error::AofError;
use bytes::{Bytes, BytesMut};
use ferry_repl::resp::{FrameDecoder, Limits, Mode};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const BLOCK: usize = 64 << 10;

/// One command and where it ends in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct AofCommand {
    pub args: Vec<Bytes>,
    /// The offset in the file just after the command.
    pub end: u64,
}

pub struct CommandReader {
    path: PathBuf,
    file: File,
    buf: BytesMut,
    decoder: FrameDecoder,
    /// The file offset of `buf[0]`.
    offset: u64,
    eof: bool,
}

impl CommandReader {
    /// Reads `path` from byte `start` (after an RDB preamble, or 0).
    pub fn open(path: &Path, start: u64) -> Result<Self, AofError> {
        let io = |source| AofError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            buf: BytesMut::with_capacity(BLOCK),
            decoder: FrameDecoder::new(Mode::Requests, Limits::default()),
            offset: start,
            eof: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next command, or `None` at a clean end of the file.
    pub fn next_command(&mut self) -> Result<Option<AofCommand>, AofError> {
        loop {
            match self.buf.first() {
                None if self.eof => return Ok(None),
                None => {
                    self.fill()?;
                    continue;
                }
                Some(b'#') => {
                    match self.buf.iter().position(|b| *b == b'\n') {
                        Some(end) => self.consume(end + 1),
                        None if self.eof => return Err(self.truncated()),
                        None => self.fill()?,
                    }
                    continue;
                }
                Some(b'*') => {}
                Some(other) => {
                    return Err(self.corrupt(
                        self.offset,
                        format!("expected a command array ('*'), found byte 0x{other:02x}"),
                    ))
                }
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Some((frame, len))) => {
                    let at = self.offset;
                    self.offset += len as u64;
                    return match frame.command_args() {
                        Some(args) => Ok(Some(AofCommand {
                            args,
                            end: self.offset,
                        })),
                        None => {
                            Err(self.corrupt(at, format!("not a command: {}", frame.describe())))
                        }
                    };
                }
                Ok(None) if self.eof => return Err(self.truncated()),
                Ok(None) => self.fill()?,
                Err(error) => {
                    return Err(self.corrupt(self.offset + error.at as u64, error.what.clone()))
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        let _ = self.buf.split_to(n);
        self.offset += n as u64;
    }

    fn fill(&mut self) -> Result<(), AofError> {
        let mut block = [0u8; BLOCK];
        let n = self.file.read(&mut block).map_err(|source| AofError::Io {
            path: self.path.clone(),
            source,
        })?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&block[..n]);
        Ok(())
    }

    fn truncated(&self) -> AofError {
        AofError::Truncated {
            path: self.path.clone(),
            offset: self.offset,
        }
    }

    fn corrupt(&self, offset: u64, problem: String) -> AofError {
        AofError::Corrupt {
            path: self.path.clone(),
            offset,
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(bytes: &[u8]) -> Result<Vec<(String, u64)>, String> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        let mut reader = CommandReader::open(file.path(), 0).unwrap();
        let mut out = Vec::new();
        loop {
            match reader.next_command() {
                Ok(Some(c)) => {
                    let words: Vec<_> = c.args.iter().map(|a| String::from_utf8_lossy(a)).collect();
                    out.push((words.join(" "), c.end));
                }
                Ok(None) => return Ok(out),
                Err(e) => {
                    let text = e.to_string();
                    let name = file.path().display().to_string();
                    return Err(text.replace(&name, "F"));
                }
            }
        }
    }

    #[test]
    fn commands_with_annotations_and_their_end_offsets() {
        let aof = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n#TS:1700000000\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        let commands = read_all(aof).unwrap();
        assert_eq!(
            commands,
            [
                ("SELECT 0".to_string(), 23),
                ("SET k v".to_string(), aof.len() as u64)
            ]
        );
    }

    #[test]
    fn a_command_across_many_blocks() {
        let value = vec![b'x'; 3 * BLOCK + 17];
        let mut aof = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
        aof.extend_from_slice(&value);
        aof.extend_from_slice(b"\r\n");
        let commands = read_all(&aof).unwrap();
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].1, aof.len() as u64);
    }

    #[test]
    fn bad_bytes_are_named_with_their_offset() {
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        let mut cut = set.to_vec();
        cut.extend_from_slice(&set[..10]);
        assert_eq!(
            read_all(&cut).unwrap_err(),
            "F ends inside a command at byte 27 (a tail cut short, as a crash leaves it); \
             ferry loads no partial AOF: cut the tail with redis-check-aof --fix \
             (valkey-check-aof) and run again"
        );
        let mut garbage = set.to_vec();
        garbage.extend_from_slice(b"SET a b\r\n");
        assert_eq!(
            read_all(&garbage).unwrap_err(),
            "F at byte 27: expected a command array ('*'), found byte 0x53"
        );
        let mut bad_len = set.to_vec();
        bad_len.extend_from_slice(b"*1\r\n$x\r\n");
        let error = read_all(&bad_len).unwrap_err();
        assert!(error == "F at byte 32: invalid bulk length", "{error}");
        assert_eq!(
            read_all(b"*0\r\n").unwrap_err(),
            "F at byte 0: not a command: array of 0 elements"
        );
        assert!(read_all(b"#TS:12")
            .unwrap_err()
            .contains("ends inside a command at byte 0"));
    }
}
