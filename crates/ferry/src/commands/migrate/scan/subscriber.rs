//! Follows the source's key-event notifications: `PSUBSCRIBE __keyevent@*__:*` on its own
//! connection; every key named in a message is marked dirty in its database.
//!
//! The subscription is confirmed before the scan starts, so every change made during the
//! scan is notified. Notifications are not queued for a client that is gone: when this
//! connection ends, changes may have been missed and the caller rescans everything.

use super::dirty::DirtyKeys;
use crate::server::client::ClientWriter;
use crate::server::client::{Client, ClientError, ReplyReader};
use crate::url::ServerUrl;
use bytes::{Bytes, BytesMut};
use ferry_repl::resp::{encode_command, Frame};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PATTERN: &[u8] = b"__keyevent@*__:*";
/// Silence after which the connection is checked with a PING; twice that, it is dead.
const QUIET: Duration = Duration::from_secs(15);

pub struct Subscription {
    reader: ReplyReader,
    /// Kept open: closing it would end the subscription.
    writer: ClientWriter,
}

/// Connects and subscribes; returns once the source confirmed the subscription.
pub async fn subscribe(url: &ServerUrl, timeout: Duration) -> Result<Subscription, ClientError> {
    let (mut reader, mut writer) = Client::connect(url, timeout).await?.into_split();
    let mut out = BytesMut::new();
    encode_command(&[b"PSUBSCRIBE".as_slice(), PATTERN], &mut out);
    writer.write_all(&out).await?;
    match reader.read(timeout.max(Duration::from_secs(5))).await? {
        Frame::Array(items) if is_kind(&items, b"psubscribe") => {
            Ok(Subscription { reader, writer })
        }
        Frame::Error(message) | Frame::BulkError(message) => Err(ClientError::Command {
            command: "PSUBSCRIBE".into(),
            message: crate::server::client::one_line(&message),
        }),
        other => Err(ClientError::Protocol(format!(
            "PSUBSCRIBE answered {}",
            other.describe()
        ))),
    }
}

impl Subscription {
    /// Marks every notified key dirty until the connection fails; returns why it ended.
    pub async fn follow(mut self, dirty: Arc<DirtyKeys>) -> ClientError {
        let mut pinged = false;
        loop {
            let frame = match self.reader.read(QUIET).await {
                Ok(frame) => frame,
                Err(ClientError::Timeout(_)) if !pinged => {
                    let mut out = BytesMut::new();
                    encode_command(&[b"PING".as_slice()], &mut out);
                    if let Err(error) = self.writer.write_all(&out).await {
                        return error.into();
                    }
                    pinged = true;
                    continue;
                }
                Err(error) => return error,
            };
            pinged = false;
            if let Some((db, key)) = key_event(frame) {
                dirty.notified(db, key);
            }
        }
    }
}

fn is_kind(items: &[Frame], kind: &[u8]) -> bool {
    matches!(items.first(), Some(Frame::Bulk(k)) if k.eq_ignore_ascii_case(kind))
}

/// `pmessage <pattern> __keyevent@<db>__:<event> <key>` → the key and its database.
/// Everything else (PING replies) is `None`.
fn key_event(frame: Frame) -> Option<(u64, Bytes)> {
    let Frame::Array(items) = frame else {
        return None;
    };
    if items.len() != 4 || !is_kind(&items, b"pmessage") {
        return None;
    }
    let mut items = items.into_iter().skip(2);
    let (Some(Frame::Bulk(channel)), Some(Frame::Bulk(key))) = (items.next(), items.next()) else {
        return None;
    };
    let rest = channel.strip_prefix(b"__keyevent@")?;
    let end = rest.iter().position(|&b| b == b'_')?;
    let db = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((db, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &[u8]) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(text))
    }

    #[test]
    fn a_key_event_names_the_database_and_key() {
        let message = Frame::Array(vec![
            bulk(b"pmessage"),
            bulk(PATTERN),
            bulk(b"__keyevent@12__:rename_to"),
            bulk(b"new\r\nname"),
        ]);
        assert_eq!(
            key_event(message),
            Some((12, Bytes::from_static(b"new\r\nname")))
        );
        let pong = Frame::Array(vec![bulk(b"pong"), bulk(b"")]);
        assert_eq!(key_event(pong), None);
        let foreign = Frame::Array(vec![
            bulk(b"pmessage"),
            bulk(PATTERN),
            bulk(b"__keyevent@x__:del"),
            bulk(b"k"),
        ]);
        assert_eq!(key_event(foreign), None);
    }
}
