//! Turning SIGTERM and SIGINT into a cancellation every part of the operator watches.

use tokio_util::sync::CancellationToken;

/// Cancels the returned token on the first SIGTERM or SIGINT. A second signal exits at once,
/// for an operator stuck past its shutdown deadline.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "shutting down: no new work, finishing what runs"
        );
        cancel.cancel();
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(signal = name, "second signal: exiting now");
        std::process::exit(130);
    });
    Ok(token)
}
