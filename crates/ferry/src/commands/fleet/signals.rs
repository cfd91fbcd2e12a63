//! Ctrl-C or SIGTERM to the fleet: no new pair starts, the running pairs are stopped (a
//! migration drains and keeps its state file, a cutover under way is undone as
//! `ferry cutover` undoes it), and the report says which pairs were stopped. A second
//! signal quits at once. The migrations run in process groups of their own, so a
//! terminal's Ctrl-C reaches the fleet alone and the fleet decides.

use crate::commands::cutover::interrupt::{Listener, Messages};

/// Listens while it lives (cutover's listener, with the fleet's words).
pub fn listen() -> Listener {
    Listener::saying(Messages {
        first: "ferry: interrupted: no new pair starts; stopping the running ones \
                (interrupt again to quit at once)"
            .into(),
        again: "ferry: interrupted again: quitting now".into(),
    })
}
