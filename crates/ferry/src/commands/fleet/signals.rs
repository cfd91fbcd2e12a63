//! Ctrl-C or SIGTERM to the fleet: no new pair starts, the running pairs are stopped (a
//! migration drains and keeps its state file, a cutover under way is undone as
//! `ferry cutover` undoes it), and the report says which pairs were stopped. A second
//! signal quits at once. The migrations run in process groups of their own, so a
//! terminal's Ctrl-C reaches the fleet alone and the fleet decides.

use crate::commands::cutover::interrupt::Interrupt;
use std::thread::JoinHandle;

/// Exit status of a process ended by SIGINT, as shells report it.
const EXIT_INTERRUPTED: i32 = 130;

/// Listens while it lives.
pub struct StopSignals {
    interrupt: Interrupt,
    done: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StopSignals {
    pub fn start() -> StopSignals {
        let interrupt = Interrupt::default();
        let (done, stopped) = tokio::sync::oneshot::channel();
        let flag = interrupt.clone();
        let thread = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("ferry-fleet-signals".into())
                    .spawn(move || runtime.block_on(listen(flag, stopped)))
                    .ok()
            });
        StopSignals {
            interrupt,
            done: Some(done),
            thread,
        }
    }

    /// Set once a signal came.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn listen(interrupt: Interrupt, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            // Without handlers the signals keep their default: they end the fleet, and
            // the migrations end with it (they are told when their parent dies).
            return;
        };
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if interrupt.requested() {
                eprintln!("ferry: interrupted again: quitting now");
                std::process::exit(EXIT_INTERRUPTED);
            }
            eprintln!(
                "ferry: interrupted: no new pair starts; stopping the running ones \
                 (interrupt again to quit at once)"
            );
            interrupt.request();
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = &mut stopped => {}
            _ = tokio::signal::ctrl_c() => interrupt.request(),
        }
    }
}
