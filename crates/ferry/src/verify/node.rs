//! One server connection of a side: a standalone server, or one node of a cluster.

use super::error::{Role, VerifyError};
use crate::tls;
use crate::url::ServerUrl;
use redis::{Cmd, Connection, FromRedisValue, Pipeline, RedisResult, Value};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Node {
    connection: Connection,
    selected: Option<u32>,
}

impl Node {
    pub fn connect(role: Role, url: &ServerUrl) -> Result<Self, VerifyError> {
        let connection =
            tls::redis_connection(url, CONNECT_TIMEOUT, TIMEOUT).map_err(|source| {
                VerifyError::Connect {
                    role,
                    server: url.address(),
                    source,
                }
            })?;
        Ok(Self {
            connection,
            selected: None,
        })
    }

    pub fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        cmd.query(&mut self.connection)
    }

    pub fn pipeline<T: FromRedisValue>(&mut self, pipe: &Pipeline) -> RedisResult<T> {
        pipe.query(&mut self.connection)
    }

    /// Writes a pipeline without reading its replies (see [`Node::receive`]): the parts
    /// of a pipeline split over a cluster's primaries are all sent before any is read.
    pub fn send(&mut self, pipe: &Pipeline) -> RedisResult<()> {
        self.connection
            .send_packed_command(&pipe.get_packed_pipeline())
    }

    /// Reads `count` replies of what [`Node::send`] sent; error replies are values.
    pub fn receive(&mut self, count: usize) -> RedisResult<Vec<Value>> {
        (0..count)
            .map(|_| self.connection.recv_response())
            .collect()
    }

    /// Whether `db` needs a SELECT first (remembered once sent).
    pub fn needs_select(&self, db: u32) -> bool {
        self.selected != Some(db)
    }

    pub fn selected(&mut self, db: u32) {
        self.selected = Some(db);
    }
}
