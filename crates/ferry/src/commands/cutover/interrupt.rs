//! Ctrl-C or SIGTERM during a switch. Left to the default, the signal would end ferry with
//! writes paused on the source (until the pause timed out), a target promoted or clients
//! half moved. Instead the switch sees the request at its next check, undoes its steps as
//! for any failure and exits non-zero. A second signal quits at once.
//!
//! Once the migration has been told to stop the switch is milliseconds from done and no
//! longer undoable, so it finishes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Exit status of a process ended by SIGINT, as shells report it.
const EXIT_INTERRUPTED: i32 = 130;

/// Whether a stop was asked for. Cloned into the threads that wait on something.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    requested: Arc<AtomicBool>,
}

impl Interrupt {
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Asks every wait that checks this to stop (the listener, or `ferry fleet`'s own
    /// handling of the signals, calls it).
    pub fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }
}

/// What the listener prints on the first signal, and on a second one before it quits.
pub struct Messages {
    pub first: String,
    pub again: String,
}

/// Listens for the signals while it lives; dropping it stops listening, so that what runs
/// next (the reverse migration of `--keep-rollback`) handles them its own way.
pub struct Listener {
    interrupt: Interrupt,
    done: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// The switch's listener. `pause_timeout` is only named in the message: a pause left
    /// behind by a second signal ends by itself then.
    pub fn start(pause_timeout: Duration) -> Self {
        Self::saying(Messages {
            first: "ferry: interrupted: undoing the switch (interrupt again to quit at once)"
                .into(),
            again: format!(
                "ferry: interrupted again: quitting now; a write pause left on the source \
                 ends by itself within {} ms",
                pause_timeout.as_millis()
            ),
        })
    }

    /// Starts listening on a thread of its own; the first signal sets the interrupt, a
    /// second quits with the status of SIGINT.
    pub fn saying(messages: Messages) -> Self {
        let interrupt = Interrupt::default();
        let (done, stopped) = tokio::sync::oneshot::channel();
        let flag = interrupt.clone();
        let thread = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("ferry-signals".into())
                    .spawn(move || runtime.block_on(listen(flag, stopped, messages)))
                    .ok()
            });
        Self {
            interrupt,
            done: Some(done),
            thread,
        }
    }

    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn listen(
    interrupt: Interrupt,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    messages: Messages,
) {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        // Without handlers the signals keep their default: they end the process.
        Err(_) => return,
    };
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = signals.next() => {
                if interrupt.requested() {
                    eprintln!("{}", messages.again);
                    std::process::exit(EXIT_INTERRUPTED);
                }
                eprintln!("{}", messages.first);
                interrupt.request();
            }
        }
    }
}

/// Ctrl-C and, on Unix, SIGTERM. Held for the listener's life so that a signal arriving
/// between two waits is not lost.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
