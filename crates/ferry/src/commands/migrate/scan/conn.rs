//! A command connection that pipelines: many commands written at once, their replies read
//! in order. Used for SCAN, DUMP and the expiry reads on the source, and for SCAN on the
//! target when a rescan looks for keys deleted while ferry could not follow.

use crate::server::client::ClientWriter;
use crate::server::client::{Client, ClientError, ReplyReader};
use crate::url::ServerUrl;
use bytes::BytesMut;
use ferry_repl::resp::{encode_command, Frame};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Longest wait for a reply (a DUMP of a big value takes a while).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SourceConn {
    reader: ReplyReader,
    writer: ClientWriter,
    out: BytesMut,
    /// The database selected on this connection.
    db: u64,
}

impl SourceConn {
    pub async fn connect(url: &ServerUrl, timeout: Duration) -> Result<Self, ClientError> {
        let (reader, writer) = Client::connect(url, timeout).await?.into_split();
        Ok(Self {
            reader,
            writer,
            out: BytesMut::new(),
            db: 0,
        })
    }

    /// Asks the server to leave the keys this connection reads looking as idle as they
    /// were (`CLIENT NO-TOUCH`, Redis and Valkey 7.2+): ferry's reads then neither make
    /// keys look used to the source's eviction nor hide, in `OBJECT IDLETIME`, which keys
    /// changed while ferry was stopped. `false` where the server has no such mode.
    pub async fn leave_keys_untouched(&mut self) -> Result<bool, ClientError> {
        self.push(&["CLIENT", "NO-TOUCH", "ON"]);
        let reply = self.replies(1).await?.pop().unwrap_or(Frame::Null);
        Ok(refused("CLIENT NO-TOUCH", &reply).is_none())
    }

    /// Queues a command; nothing is sent before [`SourceConn::replies`].
    pub fn push<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        encode_command(args, &mut self.out);
    }

    /// Queues a SELECT if `db` is not the connection's database; says whether it did (its
    /// reply comes first).
    pub fn select(&mut self, db: u64) -> bool {
        if self.db == db {
            return false;
        }
        self.db = db;
        let number = db.to_string();
        self.push(&["SELECT", number.as_str()]);
        true
    }

    /// Sends what is queued and reads `count` replies.
    pub async fn replies(&mut self, count: usize) -> Result<Vec<Frame>, ClientError> {
        self.send().await?;
        let mut replies = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            replies.push(self.read().await?);
        }
        Ok(replies)
    }

    /// Sends what is queued; the replies are read one by one with [`SourceConn::read`].
    pub async fn send(&mut self) -> Result<(), ClientError> {
        self.writer.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The next reply.
    pub async fn read(&mut self) -> Result<Frame, ClientError> {
        self.reader.read(REPLY_TIMEOUT).await
    }
}

/// An error reply as a [`ClientError`], naming the command.
pub fn refused(command: &str, reply: &Frame) -> Option<ClientError> {
    match reply {
        Frame::Error(message) | Frame::BulkError(message) => Some(ClientError::Command {
            command: command.to_owned(),
            message: crate::server::client::one_line(message),
        }),
        _ => None,
    }
}
