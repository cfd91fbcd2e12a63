//! `ferry rollback`: the cutover procedure in reverse, for a cutover made with
//! `--keep-rollback`. Clients are on the cutover's target, which the reverse migration
//! copies into the old source; rollback pauses writes on the target, waits until the old
//! source has every one, runs the hook that moves clients back, stops the reverse
//! migration and unpauses.

use crate::cli::RollbackArgs;
use crate::commands::cutover::{control_token, plan, switch};
use crate::error::Error;
use std::io::Write;

pub fn run(args: RollbackArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (source, target) = super::primaries_now(
        (&args.source, &args.source_connection),
        (&args.target, &args.target_connection),
    )?;
    let token = control_token(&args.control)?;
    let plan = plan("rollback", source, target, &args.switch, token)?;
    switch(&plan, args.switch.json, out)
}
