//! `--vector-set export=PATH` kept current: the full sync writes the export, the stream
//! only notes which vector sets its commands change (the target has none to change), and
//! when the run stops the file is written again from the source for every vector set the
//! export covers. A stop for `ferry cutover` comes while the source is paused, so the
//! export then matches the source at the switch.

use super::Migration;
use crate::codec::dump::decode as decode_payload;
use crate::error::Error;
use crate::policy::VectorSetPolicy;
use crate::server::client::{Client, ClientError};
use crate::transforms::compat::VectorExporter;
use bytes::Bytes;
use ferry_codec::{Kind, ValuePart};
use ferry_repl::resp::Frame;
use std::path::Path;

/// What the refresh found.
struct Refreshed {
    sets: u64,
    elements: u64,
}

impl Migration {
    /// Rewrites the export from the source when the policy exports and anything was
    /// exported or changed; says what it wrote. A failure leaves the previous file.
    pub(super) async fn refresh_vector_export(&self) -> Result<(), Error> {
        let VectorSetPolicy::Export(path) = &self.policies.vector_set else {
            return Ok(());
        };
        let keys = self.exported_keys.snapshot();
        if keys.is_empty() {
            return Ok(());
        }
        let refreshed = self.rewrite_export(path, &keys).await?;
        self.say(format!(
            "--vector-set export={}: brought up to date from the source: {} vector sets \
             ({} elements)",
            path.display(),
            refreshed.sets,
            refreshed.elements
        ));
        Ok(())
    }

    async fn rewrite_export(
        &self,
        path: &Path,
        keys: &std::collections::BTreeSet<(u64, Bytes)>,
    ) -> Result<Refreshed, Error> {
        let mut source = Client::connect(&self.source_url, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        // The file is replaced whole, and only once every set was read.
        let mut exporter = VectorExporter::new(path, true)?;
        let mut refreshed = Refreshed {
            sets: 0,
            elements: 0,
        };
        let mut selected = None;
        for (db, key) in keys {
            if selected != Some(*db) {
                let db_text = db.to_string();
                source
                    .call_ok(&["SELECT", db_text.as_str()])
                    .await
                    .map_err(|e| self.source_error(e))?;
                selected = Some(*db);
            }
            let payload = match source
                .call_ok(&[&b"DUMP"[..], key])
                .await
                .map_err(|e| self.source_error(e))?
            {
                Frame::Bulk(payload) => payload,
                // Deleted, expired or renamed away since: no longer in the export.
                Frame::NullBulk | Frame::Null => continue,
                other => {
                    return Err(self.source_error(ClientError::Protocol(format!(
                        "DUMP answered {}",
                        other.describe()
                    ))))
                }
            };
            let (header, parts) = decode_payload(key.clone(), &payload)
                .map_err(|source| Error::Snapshot { source })?;
            // A name now holding another type (renamed onto, or set again) is not a set.
            if !matches!(header.kind, Kind::Module(id) if id.is_vector_set()) {
                continue;
            }
            let body: Vec<u8> = parts
                .iter()
                .filter_map(|part| match part {
                    ValuePart::Module(bytes) => Some(&bytes[..]),
                    _ => None,
                })
                .flatten()
                .copied()
                .collect();
            refreshed.elements += exporter.export(*db, key, &body)?;
            refreshed.sets += 1;
        }
        exporter.commit()?;
        Ok(refreshed)
    }
}
