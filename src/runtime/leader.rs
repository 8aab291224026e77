//! Leader election on any [`Store`]: a `leader` key attached to a lease.
//!
//! - campaign: grant a lease, then create the key with it in a transaction that succeeds only
//!   if the key is absent. The key's create revision is the fencing token of the term.
//! - keep-alive: renew the lease every `renew_every`. Whether we still lead is judged on this
//!   process's monotonic clock: the store expires the lease `ttl` after it received the last
//!   renewal, which is after we sent it, so "last successful renewal sent + ttl" is a bound
//!   the store cannot beat. We step down a margin before it, even when the store is silent.
//! - resign: revoke the lease, which deletes the key; a standby watching it takes over at once.
//! - a follower watches the key and campaigns as soon as it is deleted (lease expired or
//!   revoked), and at least every `renew_every` in case the watch broke.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::BackoffConfig;
use super::metrics::Metrics;
use crate::store::{
    Compare, EventKind, LeaseId, Op, Revision, Store, StoreError, Txn, WatchStream,
};

/// Delays between campaigns while the store is unreachable.
const RETRY: BackoffConfig = BackoffConfig {
    min: Duration::from_millis(200),
    max: Duration::from_secs(10),
};

/// How long a resign may take before the lease is left to expire on its own.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// The full store key of the election (`Keys::leader()`).
    pub key: String,
    /// Who we are, stored as the key's value (`host/pid`), for `omtd` users and logs.
    pub identity: String,
    pub ttl: Duration,
    pub renew_every: Duration,
}

/// This process's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    Follower,
    Leader { token: Revision, lease: LeaseId },
}

impl Leadership {
    pub fn token(&self) -> Option<Revision> {
        match self {
            Leadership::Leader { token, .. } => Some(*token),
            Leadership::Follower => None,
        }
    }
}

/// A running election. Dropping it does not resign: call [`Elector::resign`].
pub struct Elector {
    state: watch::Receiver<Leadership>,
    deposed: mpsc::UnboundedSender<Revision>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Elector {
    /// Starts campaigning.
    pub fn spawn(store: Arc<dyn Store>, config: ElectionConfig, metrics: Arc<Metrics>) -> Elector {
        let (state_tx, state) = watch::channel(Leadership::Follower);
        let (deposed, deposed_rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let campaign = Campaign {
            store,
            config,
            metrics,
            state: state_tx,
            deposed: deposed_rx,
        };
        let task = tokio::spawn(campaign.run(stop.clone()));
        Elector {
            state,
            deposed,
            stop,
            task,
        }
    }

    /// The role now and its changes.
    pub fn watch(&self) -> watch::Receiver<Leadership> {
        self.state.clone()
    }

    /// A write of term `token` was fenced: stop leading now rather than at the next renewal.
    pub fn deposed(&self, token: Revision) {
        let _ = self.deposed.send(token);
    }

    /// A handle writers use to report being fenced.
    pub fn deposed_sender(&self) -> mpsc::UnboundedSender<Revision> {
        self.deposed.clone()
    }

    /// Stops campaigning and, if leading, revokes the lease so a standby takes over at once.
    pub async fn resign(self) {
        self.stop.cancel();
        if tokio::time::timeout(RESIGN_TIMEOUT * 2, self.task)
            .await
            .is_err()
        {
            tracing::warn!("resigning took too long; the lease will expire on its own");
        }
    }
}

struct Campaign {
    store: Arc<dyn Store>,
    config: ElectionConfig,
    metrics: Arc<Metrics>,
    state: watch::Sender<Leadership>,
    deposed: mpsc::UnboundedReceiver<Revision>,
}

/// Why a term ended.
enum TermEnd {
    Stopped,
    Lost(String),
}

impl Campaign {
    async fn run(mut self, stop: CancellationToken) {
        let mut retry = RETRY.sequence();
        while !stop.is_cancelled() {
            match self.campaign().await {
                Ok(Some((token, lease, renewed))) => {
                    retry = RETRY.sequence();
                    tracing::info!(token, identity = %self.config.identity, "became the leader");
                    self.state.send_replace(Leadership::Leader { token, lease });
                    self.metrics.set_leader(true);
                    let end = self.lead(token, lease, renewed, &stop).await;
                    self.state.send_replace(Leadership::Follower);
                    self.metrics.set_leader(false);
                    match end {
                        TermEnd::Stopped => {
                            self.revoke(lease).await;
                            tracing::info!(token, "resigned leadership");
                            return;
                        }
                        TermEnd::Lost(why) => {
                            tracing::warn!(token, reason = %why, "lost leadership; stopped reconciling");
                            // Free the key if it is still ours, so the next leader need not
                            // wait for the lease to expire. Failing that, it expires.
                            self.revoke(lease).await;
                            // Give the standbys that saw the vacancy the first go: a process
                            // that just lost its lease is the least likely to keep one.
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                _ = tokio::time::sleep(self.config.renew_every) => {}
                            }
                        }
                    }
                }
                Ok(None) => self.wait_for_vacancy(&stop).await,
                Err(e) => {
                    let delay = retry.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot campaign for leadership; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// One attempt: the token, lease and send time of the grant when we won, `None` when
    /// someone else leads.
    async fn campaign(&self) -> Result<Option<(Revision, LeaseId, Instant)>, StoreError> {
        let sent = Instant::now();
        let lease = self.store.grant_lease(self.config.ttl).await?;
        let txn = Txn::new()
            .when(Compare::absent(self.config.key.clone()))
            .then(Op::put_with_lease(
                self.config.key.clone(),
                self.config.identity.clone().into_bytes(),
                lease.id,
            ));
        match self.store.txn(txn).await {
            // The key was created by this very transaction: its create revision is the
            // transaction's revision.
            Ok(r) if r.succeeded => Ok(Some((r.revision, lease.id, sent))),
            Ok(_) => {
                self.revoke(lease.id).await;
                Ok(None)
            }
            Err(e) => {
                self.revoke(lease.id).await;
                Err(e)
            }
        }
    }

    /// Leads until stopped or until leadership cannot be vouched for any more.
    async fn lead(
        &mut self,
        token: Revision,
        lease: LeaseId,
        mut renewed: Instant,
        stop: &CancellationToken,
    ) -> TermEnd {
        let ttl = self.config.ttl;
        // Step down a tenth of the TTL early: the margin covers clock rate differences and
        // the time it takes workers to notice.
        let valid_for = ttl - ttl / 10;
        let mut watch = self.watch_key(token).await;
        let mut tick = tokio::time::interval(self.config.renew_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate: the lease was just granted
        loop {
            let deadline = renewed + valid_for;
            tokio::select! {
                _ = stop.cancelled() => return TermEnd::Stopped,
                _ = tokio::time::sleep_until(deadline) => {
                    return TermEnd::Lost(format!(
                        "the lease could not be renewed for {valid_for:?} (is the store reachable?)"
                    ));
                }
                Some(t) = self.deposed.recv() => {
                    if t == token {
                        return TermEnd::Lost("a write was refused: another process holds the leader key".into());
                    }
                }
                event = next_event(&mut watch) => match event {
                    Some(Ok(ev)) if ev.kind == EventKind::Delete => {
                        return TermEnd::Lost("the leader key was deleted".into());
                    }
                    Some(Ok(ev)) if ev.kv.create_revision != token => {
                        return TermEnd::Lost("the leader key was created again by another process".into());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => watch = None,
                },
                _ = tick.tick() => {
                    let sent = Instant::now();
                    let budget = deadline.saturating_duration_since(sent);
                    match tokio::time::timeout(budget, self.store.keep_alive(lease)).await {
                        Ok(Ok(_)) => renewed = sent,
                        Ok(Err(StoreError::LeaseNotFound(_))) => {
                            return TermEnd::Lost("the lease expired".into());
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the leader lease; retrying"),
                        Err(_) => tracing::warn!("renewing the leader lease timed out; retrying"),
                    }
                    if watch.is_none() {
                        watch = self.watch_key(token).await;
                    }
                }
            }
        }
    }

    /// Watches the leader key for changes after our creation of it (`None` if it fails: the
    /// lease renewals still guard the term).
    async fn watch_key(&self, token: Revision) -> Option<WatchStream> {
        match tokio::time::timeout(
            self.config.renew_every,
            self.store.watch(&self.config.key, token + 1),
        )
        .await
        {
            Ok(Ok(stream)) => Some(stream),
            _ => None,
        }
    }

    /// Waits until the leader key is gone, re-reading it every `renew_every` in case a
    /// watch misses the deletion. Returns at once when the store fails: the next campaign
    /// reports that and backs off.
    async fn wait_for_vacancy(&self, stop: &CancellationToken) {
        loop {
            let kv = match self.store.get(&self.config.key).await {
                Ok(Some(kv)) => kv,
                Ok(None) | Err(_) => return,
            };
            let deleted = async {
                let Ok(mut stream) = self
                    .store
                    .watch(&self.config.key, kv.mod_revision + 1)
                    .await
                else {
                    return true;
                };
                while let Some(Ok(ev)) = stream.next().await {
                    if ev.kind == EventKind::Delete {
                        return true;
                    }
                }
                // The watch broke: let the campaign find out what the store says.
                true
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                done = tokio::time::timeout(self.config.renew_every, deleted) => {
                    if done.is_ok() {
                        return;
                    }
                }
            }
        }
    }

    async fn revoke(&self, lease: LeaseId) {
        match tokio::time::timeout(RESIGN_TIMEOUT, self.store.revoke_lease(lease)).await {
            Ok(Ok(())) | Ok(Err(StoreError::LeaseNotFound(_))) => {}
            Ok(Err(e)) => {
                tracing::debug!(lease, error = %e, "cannot revoke a lease; it will expire")
            }
            Err(_) => tracing::debug!(lease, "revoking a lease timed out; it will expire"),
        }
    }
}

async fn next_event(
    watch: &mut Option<WatchStream>,
) -> Option<Result<crate::store::WatchEvent, StoreError>> {
    match watch {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}
