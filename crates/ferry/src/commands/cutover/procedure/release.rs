//! Release: the target is now the live server, so what only a migration target needs
//! goes (ferry's markers, Valkey's import mode). Never a reason to undo the switch (the
//! data is complete): a refusal becomes the step's detail, for the operator to finish by
//! hand.

use super::{line, StepResult, Switch};
use crate::commands::cutover::server::ServerLink;

impl Switch<'_> {
    pub(super) fn release_target(&mut self) -> StepResult {
        if self.target_cluster {
            return self.release_cluster_target();
        }
        let detail = match self.target()?.leave_migration() {
            Ok(done) if done.is_empty() => "nothing to release".to_owned(),
            Ok(done) => done.join(", "),
            Err(error) => format!(
                "could not release the target ({}): delete {} in db {} and run CONFIG SET \
                 import-mode no by hand",
                line(&error),
                crate::state::marker::KEY,
                crate::state::marker::DB
            ),
        };
        Ok(((), detail))
    }

    /// Each primary of a cluster target drops ferry's per-slot markers.
    fn release_cluster_target(&mut self) -> StepResult {
        let template = self.plan.target.clone();
        let map = self
            .target()?
            .slot_map(&template.host, template.tls.is_some())?;
        let mut done = Vec::new();
        for node in &map.nodes {
            let mut url = template.clone();
            url.host = node.host.clone();
            url.port = node.port;
            let released = match ServerLink::connect(&url) {
                Ok(mut link) => link.leave_migration().map_err(|e| line(&e)),
                Err(e) => Err(line(&*e)),
            };
            match released {
                Ok(steps) => {
                    done.extend(steps.into_iter().map(|s| format!("{}: {s}", url.address())))
                }
                Err(why) => done.push(format!(
                    "{}: could not release ({why}): delete the keys {}:* by hand",
                    url.address(),
                    crate::state::marker::KEY
                )),
            }
        }
        let detail = match done.is_empty() {
            true => "nothing to release".to_owned(),
            false => done.join(", "),
        };
        Ok(((), detail))
    }
}
