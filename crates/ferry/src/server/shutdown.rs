//! Waiting for the operator's stop: Ctrl-C or SIGTERM (what `kill`, systemd and
//! Kubernetes send), for every long-running command.

/// Resolves on Ctrl-C or SIGTERM. Where SIGTERM cannot be watched, Ctrl-C alone.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
