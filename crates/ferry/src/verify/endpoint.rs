//! One server of the comparison: its connection, what it can do, and paced commands.

use super::error::{Role, VerifyError};
use super::limiter::Limiter;
use super::reply;
use crate::tls;
use crate::url::ServerUrl;
use redis::{Cmd, Connection, FromRedisValue, Pipeline, Value};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Optional commands, detected once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Abilities {
    /// Absolute key expiry (Redis 7.0+, Valkey); else derived from PTTL.
    pub pexpiretime: bool,
    /// Hash field TTLs (Redis 7.4+, Valkey 9.0+).
    pub hash_field_ttl: bool,
    /// Built-in vector sets (Redis 8).
    pub vector_sets: bool,
}

pub struct Endpoint {
    pub role: Role,
    /// host:port, safe to print.
    pub server: String,
    pub abilities: Abilities,
    connection: Connection,
    limiter: Limiter,
    selected: Option<u32>,
}

impl Endpoint {
    pub fn connect(
        role: Role,
        url: &ServerUrl,
        max_ops_per_sec: Option<u32>,
    ) -> Result<Self, VerifyError> {
        let server = url.address();
        let connect_error =
            |source: Box<dyn std::error::Error + Send + Sync>| VerifyError::Connect {
                role,
                server: server.clone(),
                source,
            };
        let connection =
            tls::redis_connection(url, CONNECT_TIMEOUT, TIMEOUT).map_err(connect_error)?;
        let mut endpoint = Self {
            role,
            server,
            abilities: Abilities::default(),
            connection,
            limiter: Limiter::new(max_ops_per_sec),
            selected: None,
        };
        endpoint.abilities = Abilities {
            pexpiretime: endpoint.has_command("PEXPIRETIME")?,
            hash_field_ttl: endpoint.has_command("HPEXPIRETIME")?,
            vector_sets: endpoint.has_command("VCARD")?,
        };
        Ok(endpoint)
    }

    fn has_command(&mut self, name: &str) -> Result<bool, VerifyError> {
        let info: Value = self.query(redis::cmd("COMMAND").arg("INFO").arg(name))?;
        Ok(reply::items(&info)
            .and_then(|items| items.first())
            .is_some_and(|first| !matches!(first, Value::Nil)))
    }

    /// Sends one command.
    pub fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, VerifyError> {
        self.limiter.take(1);
        cmd.query(&mut self.connection)
            .map_err(|source| self.command_error(cmd_name(cmd), source))
    }

    /// Sends a pipeline of `commands` commands; `what` names it in errors.
    pub fn pipeline<T: FromRedisValue>(
        &mut self,
        pipe: &Pipeline,
        commands: usize,
        what: &str,
    ) -> Result<T, VerifyError> {
        self.limiter.take(commands as u64);
        pipe.query(&mut self.connection)
            .map_err(|source| self.command_error(what.to_owned(), source))
    }

    pub fn select(&mut self, db: u32) -> Result<(), VerifyError> {
        if self.selected != Some(db) {
            self.query::<()>(redis::cmd("SELECT").arg(db))?;
            self.selected = Some(db);
        }
        Ok(())
    }

    pub fn command_error(&self, command: String, source: redis::RedisError) -> VerifyError {
        VerifyError::Command {
            role: self.role,
            server: self.server.clone(),
            command,
            source,
        }
    }

    pub fn reply_error(&self, command: &str) -> VerifyError {
        VerifyError::Reply {
            role: self.role,
            server: self.server.clone(),
            command: command.to_owned(),
        }
    }

    /// Database numbers that hold keys, from INFO keyspace ("db3:keys=12,…").
    pub fn databases(&mut self) -> Result<Vec<u32>, VerifyError> {
        let info: String = self.query(redis::cmd("INFO").arg("keyspace"))?;
        Ok(info
            .lines()
            .filter_map(|line| line.strip_prefix("db")?.split(':').next()?.parse().ok())
            .collect())
    }
}

/// The command's name (its first word) for messages; arguments may be user data.
fn cmd_name(cmd: &Cmd) -> String {
    cmd.args_iter()
        .next()
        .and_then(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).to_uppercase()),
            _ => None,
        })
        .unwrap_or_else(|| "command".to_owned())
}
