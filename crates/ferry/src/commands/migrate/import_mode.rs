//! The target's import mode over one run (Valkey 8.1+, see `probe::enter_import_mode`):
//! turned on once both servers answered, and settled when the run fails. A target left in
//! import mode keeps every key past its expiry, invisible to clients and never freed, so
//! a failure must either give back the setting ferry found or say plainly that it did not.

use super::{Migration, TargetSetup};
use crate::error::Error;
use crate::server::client::{Client, ClientError};
use crate::server::probe::{self, ImportMode};
use ferry_repl::resp::Frame;

/// How to end import mode by hand, for the lines that leave it on.
const HOW_TO_END: &str = "end it with `ferry cutover`, a resumed run, or CONFIG SET import-mode no";

impl Migration {
    /// Puts the target in import mode where it has one, once both servers answered: a run
    /// that cannot start leaves the target as it was.
    pub(super) async fn enter_import_mode(
        &self,
        client: &mut Client,
        target: &mut TargetSetup,
    ) -> Result<(), Error> {
        // Import mode is per node and per connection; the cluster's node connections are
        // opened later, so a cluster target holds near expiries instead.
        if target.cluster {
            return Ok(());
        }
        target.import_mode = match probe::enter_import_mode(client).await {
            Ok(entered @ ImportMode::Entered { .. }) => {
                self.say(
                    "target in import mode: it keeps keys until the source deletes them, as a \
                     replica does; `ferry cutover` turns it off (or CONFIG SET import-mode no)",
                );
                entered
            }
            Ok(ImportMode::Absent) => ImportMode::Absent,
            Err(refused) => {
                self.say(format!(
                    "the target has import mode but refused it ({refused}); expiries due \
                     soon are held {} s for the source's DEL instead",
                    crate::policy::EXPIRY_GRACE_MS / 1000
                ));
                ImportMode::Absent
            }
        };
        Ok(())
    }

    /// After a failed run that turned import mode on: when ferry owns no data on the
    /// target yet (no earlier run, no full sync begun) the setting it found is restored;
    /// otherwise the data stays for a resume, and the error says the target is left in
    /// import mode and how to end it.
    pub(super) async fn settle_import_mode(
        &self,
        entered: ImportMode,
        owned_before: bool,
        failure: Error,
    ) -> Error {
        let ImportMode::Entered { was_on } = entered else {
            return failure;
        };
        let owns_data = owned_before || self.events.stats().full_syncs() > 0;
        if was_on && !owns_data {
            // It was on before this run touched anything: nothing of ours to undo.
            return failure;
        }
        if owns_data {
            let note = format!(
                "the target is left in import mode (keys with a TTL are kept past it, \
                 invisible, until it ends): {HOW_TO_END}"
            );
            return Error::LeftBehind {
                failure: Box::new(failure),
                note,
            };
        }
        match self.leave_import_mode().await {
            Ok(()) => failure,
            Err(error) => Error::LeftBehind {
                failure: Box::new(failure),
                note: format!(
                    "the target may be left in import mode (turning it off failed: {}); \
                     {HOW_TO_END}",
                    crate::error::one_line(crate::error::chain(&error))
                ),
            },
        }
    }

    /// `CONFIG SET import-mode no` over a connection of its own: the run's connection
    /// may be the one that failed.
    pub(super) async fn leave_import_mode(&self) -> Result<(), ClientError> {
        let mut client = Client::connect(&self.target_url, self.connect_timeout).await?;
        match client.call(&["CONFIG", "SET", "import-mode", "no"]).await? {
            Frame::Simple(_) => Ok(()),
            other => Err(ClientError::Command {
                command: "CONFIG SET import-mode no".into(),
                message: other.describe(),
            }),
        }
    }
}
