//! A side that is a cluster: found by `cluster_enabled:1` in INFO, its primaries read
//! with `CLUSTER SHARDS` (`CLUSTER SLOTS` before 7.0), and each command about a key sent
//! to the primary serving the key's slot. A pipeline is split per primary and its replies
//! put back in order. A slot may move while verify runs: `MOVED` re-reads the slot map
//! and resends to the new owner, `ASK` resends once with `ASKING` to the importing node.

use super::endpoint::{cmd_name, node_address, Endpoint};
use super::error::VerifyError;
use crate::server::cluster::blocking::frame;
use crate::server::cluster::slot::key_slot;
use crate::server::cluster::topology::{parse_cluster_shards, parse_cluster_slots, SlotMap};
use redis::{Cmd, ErrorKind, RedisError, ServerErrorKind, Value};
use std::collections::BTreeMap;

/// Redirects followed for one command before giving up (a slot moving back and forth).
const MAX_REDIRECTS: usize = 5;

impl Endpoint {
    /// Reads the slot map when the URL's server is a cluster node.
    pub(super) fn detect_cluster(&mut self) -> Result<(), VerifyError> {
        let server = self.server.clone();
        let info: String = self.node_query(&server, redis::cmd("INFO").arg("cluster"))?;
        if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
            let map = self.discover(&server)?;
            self.slots = Some(map);
            self.cluster_databases = self.read_cluster_databases(&server);
        }
        Ok(())
    }

    /// `cluster-databases` (Valkey 9.0+); 1, database 0 only, where the setting does not
    /// exist or CONFIG is refused.
    fn read_cluster_databases(&mut self, server: &str) -> u32 {
        let reply: Result<Vec<String>, _> = self.node_query(
            server,
            redis::cmd("CONFIG").arg("GET").arg("cluster-databases"),
        );
        reply
            .ok()
            .and_then(|pair| pair.get(1)?.parse().ok())
            .unwrap_or(1)
            .max(1)
    }

    /// The slot map as the node at `address` sees it.
    fn discover(&mut self, address: &str) -> Result<SlotMap, VerifyError> {
        let asked_host = self.url.host.clone();
        let tls = self.url.tls.is_some();
        let shards = self
            .connection(address)?
            .query::<Value>(redis::cmd("CLUSTER").arg("SHARDS"));
        let map = match shards {
            Ok(reply) => parse_cluster_shards(&frame(&reply), &asked_host, tls)
                .map_err(|why| self.reply_error(&format!("CLUSTER SHARDS ({why})")))?,
            // Before Redis 7.0 there is no CLUSTER SHARDS (an error reply, not a broken
            // connection); an ACL may also allow only CLUSTER SLOTS.
            Err(e) if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
                let reply: Value = self.node_query(address, redis::cmd("CLUSTER").arg("SLOTS"))?;
                parse_cluster_slots(&frame(&reply), &asked_host)
                    .map_err(|why| self.reply_error(&format!("CLUSTER SLOTS ({why})")))?
            }
            Err(e) => return Err(self.command_error("CLUSTER SHARDS".into(), e)),
        };
        if map.nodes.is_empty() {
            return Err(self.reply_error("CLUSTER SHARDS (no primary serves a slot)"));
        }
        Ok(map)
    }

    /// The primary serving `cmd`'s key (any primary for a command without a key).
    fn owner(&self, cmd: &Cmd) -> Result<String, VerifyError> {
        let map = self
            .slots
            .as_ref()
            .ok_or_else(|| self.reply_error("cluster routing"))?;
        let slot = routing_key(cmd).map(key_slot).unwrap_or(0);
        let node = map
            .owner(slot)
            .and_then(|index| map.nodes.get(index))
            .or_else(|| map.nodes.first())
            .ok_or_else(|| self.reply_error("cluster routing"))?;
        Ok(node_address(node))
    }

    /// Sends `cmd` to the node serving its key, following redirects. An error reply is
    /// an error, as on a single server.
    pub(super) fn routed(&mut self, cmd: &Cmd) -> Result<Value, VerifyError> {
        let mut address = self.owner(cmd)?;
        let mut asking = false;
        for _ in 0..MAX_REDIRECTS {
            let node = self.connection(&address)?;
            let result = if asking {
                // The reply as a value: a pipeline's error would hide the redirect's node.
                let mut pipe = redis::pipe();
                pipe.ignore_errors()
                    .cmd("ASKING")
                    .ignore()
                    .add_command(cmd.clone());
                node.pipeline::<Vec<Value>>(&pipe)
                    .and_then(|mut replies| match replies.pop() {
                        Some(Value::ServerError(error)) => Err(error.into()),
                        reply => Ok(reply.unwrap_or(Value::Nil)),
                    })
            } else {
                node.query::<Value>(cmd)
            };
            match result {
                Ok(value) => return Ok(value),
                Err(e) => match redirect(&e) {
                    Some((moved, to)) => {
                        if moved {
                            self.refresh(&to)?;
                        }
                        address = to;
                        asking = !moved;
                    }
                    None => return Err(self.command_error(cmd_name(cmd), e)),
                },
            }
        }
        Err(self.reply_error(&format!(
            "{} (redirected {MAX_REDIRECTS} times)",
            cmd_name(cmd)
        )))
    }

    /// Sends each command of `pipe` to the node serving its key: one pipeline per node,
    /// replies in the order of `pipe`. Commands redirected (their slot moved meanwhile)
    /// are resent one by one.
    pub(super) fn routed_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
        what: &str,
    ) -> Result<Vec<Value>, VerifyError> {
        let commands: Vec<&Cmd> = pipe.cmd_iter().collect();
        let mut by_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, cmd) in commands.iter().enumerate() {
            by_node.entry(self.owner(cmd)?).or_default().push(index);
        }
        let involved: Vec<String> = by_node.keys().cloned().collect();
        let mut replies = match self.exchange(&commands, by_node, what) {
            Ok(replies) => replies,
            Err(error) => {
                // Replies may be left unread: those connections start afresh on next use.
                for address in involved {
                    self.connections.remove(&address);
                }
                return Err(error);
            }
        };
        for (index, reply) in replies.iter_mut().enumerate() {
            let Value::ServerError(error) = reply else {
                continue;
            };
            let error = RedisError::from(error.clone());
            if redirect(&error).is_none() {
                return Err(self.command_error(what.to_owned(), error));
            }
            // Sent again: it counts again against --max-ops-per-sec.
            self.limiter.take(1);
            *reply = self.routed(commands[index])?;
        }
        Ok(replies)
    }

    /// Sends each primary its part of a pipeline, all parts before reading any, so the
    /// primaries work on them at the same time (a server reads on while its replies wait
    /// in its output buffer); returns the replies in the pipeline's order, error replies
    /// as values.
    fn exchange(
        &mut self,
        commands: &[&Cmd],
        by_node: BTreeMap<String, Vec<usize>>,
        what: &str,
    ) -> Result<Vec<Value>, VerifyError> {
        for (address, indexes) in &by_node {
            let mut part = redis::pipe();
            for &index in indexes {
                part.add_command(commands[index].clone());
            }
            let node = self.connection(address)?;
            node.send(&part)
                .map_err(|source| self.command_error(what.to_owned(), source))?;
        }
        let mut replies = vec![Value::Nil; commands.len()];
        for (address, indexes) in &by_node {
            let values = self
                .connection(address)?
                .receive(indexes.len())
                .map_err(|source| self.command_error(what.to_owned(), source))?;
            for (&index, value) in indexes.iter().zip(values) {
                replies[index] = value;
            }
        }
        Ok(replies)
    }

    /// Re-reads the slot map (from the node a MOVED named, else from any known primary).
    fn refresh(&mut self, moved_to: &str) -> Result<(), VerifyError> {
        let mut candidates = vec![moved_to.to_owned()];
        candidates.extend(self.nodes());
        let mut last_error = None;
        for address in candidates {
            match self.discover(&address) {
                Ok(map) => {
                    self.slots = Some(map);
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| self.reply_error("CLUSTER SHARDS")))
    }
}

/// `(true, node)` for MOVED, `(false, node)` for ASK.
fn redirect(error: &RedisError) -> Option<(bool, String)> {
    let moved = match error.kind() {
        ErrorKind::Server(ServerErrorKind::Moved) => true,
        ErrorKind::Server(ServerErrorKind::Ask) => false,
        _ => return None,
    };
    let (address, _slot) = error.redirect_node()?;
    Some((moved, address.to_owned()))
}

/// The key a command is about: its first argument, XINFO's second (after the
/// subcommand).
pub fn routing_key(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().filter_map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()?;
    if name.eq_ignore_ascii_case(b"XINFO") {
        args.next()?;
    }
    args.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_first_argument_except_for_xinfo() {
        assert_eq!(routing_key(redis::cmd("TYPE").arg("k")), Some(&b"k"[..]));
        assert_eq!(
            routing_key(redis::cmd("XINFO").arg("GROUPS").arg("s")),
            Some(&b"s"[..])
        );
        assert_eq!(routing_key(&redis::cmd("RANDOMKEY")), None);
    }
}
