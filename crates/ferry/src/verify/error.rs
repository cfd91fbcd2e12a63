//! What can stop a verification. Messages name the server by host:port, never by URL, so
//! a password in the URL cannot reach a terminal or a log.

/// Which side of the comparison a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Source,
    Target,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Target => "target",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot connect to the {role} ({server})")]
    Connect {
        role: Role,
        server: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{command} failed on the {role} ({server})")]
    Command {
        role: Role,
        server: String,
        command: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("unexpected {command} reply from the {role} ({server})")]
    Reply {
        role: Role,
        server: String,
        command: String,
    },
    /// Not a failure of verify itself: the comparison ran and found differences.
    #[error("{count} differing keys")]
    Differences { count: u64 },
}

impl VerifyError {
    /// 1 when differences were found; 2 when verify could not do its job.
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyError::Differences { .. } => 1,
            _ => 2,
        }
    }
}
