//! Connecting to etcd, and sending one request under our own deadline (the client's
//! balanced channel would wait forever when no endpoint is reachable).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use etcd_client as ec;

use super::grpc::{
    describe, is_connect_failure, is_no_leader, is_permission_denied, is_too_many_requests,
    is_transport,
};
use super::tls::EtcdTls;
use crate::store::{Result, StoreError};

/// TCP connect timeout per endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `connect` waits for a first answer before declaring the endpoints unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for one request (for a stream: until its first answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings while a stream (watch) is open, so a server that vanished without closing the
/// connection (host down, partition) ends the watch instead of leaving it silent forever.
/// etcd refuses pings more often than every 5 s (`--grpc-keepalive-min-time`).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// gRPC's default 4 MiB cap on a response is too small for a list of a big cluster's state.
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// Pause before resending a request that could not connect, times the attempt number.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// First and longest pause before resending a request etcd refused as "too many requests".
const BUSY_PAUSE_FIRST: Duration = Duration::from_millis(25);
const BUSY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// A [`Store`](crate::store::Store) backed by an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    // The typed clients share one balanced channel; each call clones one because the
    // client methods take `&mut self`.
    pub(super) kv: ec::KvClient,
    pub(super) watch: ec::WatchClient,
    pub(super) lease: ec::LeaseClient,
    /// Users and roles (`omtd store secure`).
    pub(super) auth: ec::AuthClient,
    /// `h1:p1,h2:p2`, for error messages.
    pub(super) endpoints: String,
    /// How many endpoints the channel balances over (bounds the retries in `send`).
    endpoint_count: u32,
    /// An open keep-alive stream per lease refreshed through this connection, reused by
    /// the next refresh (see `lease.rs`).
    pub(super) keepers: super::lease::Keepers,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl EtcdStore {
    /// Connect to an etcd cluster given `host:port` endpoints, and check that it answers:
    /// a dead or wrong address fails here (within a few seconds) rather than at first use.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        Self::connect_with(endpoints, None).await
    }

    /// [`EtcdStore::connect`], over TLS when `tls` is given (a TLS failure, such as a server
    /// certificate the CA did not sign, fails here too).
    pub async fn connect_with(endpoints: &[String], tls: Option<&EtcdTls>) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::Config(
                "no etcd endpoint given: use etcd://host:port[,host:port]".into(),
            ));
        }
        let joined = endpoints.join(",");
        let options = ec::ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            // A member cut off from the others still answers, from data that stops moving:
            // a watch through it would go silent, not fail. With "require leader" etcd
            // refuses our requests while it has no leader and cancels our watches within a
            // few election timeouts, so we notice and go to a member that has one.
            .with_require_leader(true);
        let options = match tls {
            Some(tls) => options.with_tls(tls.options()?),
            None => options,
        };
        let scheme = if tls.is_some() { "etcd+tls" } else { "etcd" };
        let client = match tokio::time::timeout(
            PROBE_TIMEOUT,
            ec::Client::connect(endpoints, Some(options)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e @ (ec::Error::InvalidUri(_) | ec::Error::InvalidArgs(_)))) => {
                return Err(StoreError::Config(format!(
                    "etcd endpoints {scheme}://{joined}: {e}"
                )));
            }
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "etcd at {scheme}://{joined}: connect: {e}"
                )))
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "etcd at {joined}: connect: no answer within {PROBE_TIMEOUT:?}"
                )))
            }
        };
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: client.lease_client(),
            auth: client.auth_client(),
            endpoints: joined,
            endpoint_count: u32::try_from(endpoints.len()).unwrap_or(u32::MAX / 4),
            keepers: Default::default(),
        };
        // The channel connects lazily, so only a request tells whether anyone is there.
        match tokio::time::timeout(PROBE_TIMEOUT, store.read_revision()).await {
            Ok(Ok(_)) => Ok(store),
            // A TLS mismatch shows only as a connection torn down ("operation was
            // canceled"), so name the likely fixes.
            Ok(Err(StoreError::Unavailable(m))) => Err(StoreError::Unavailable(format!(
                "{m} ({})",
                match tls {
                    None => "if etcd serves TLS, use etcd+tls:// with --store-ca",
                    Some(t) if t.identity.is_none() => {
                        "if etcd requires client certificates, pass --store-cert and --store-key"
                    }
                    Some(_) => {
                        "if the TLS handshake failed: is the server's certificate signed by \
                         --store-ca and named for this host, and --store-cert by etcd's CA?"
                    }
                }
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd at {}: no endpoint answered within {PROBE_TIMEOUT:?}",
                store.endpoints
            ))),
        }
    }

    /// Send one request under [`REQUEST_TIMEOUT`] (for all attempts together).
    ///
    /// etcd-client's balanced channel keeps a dead endpoint in rotation and fails the requests
    /// it routes there with "tcp connect error", so with one member of three down a third of
    /// all requests would fail. Such a request never left this process, so sending it again is
    /// safe whatever it does (even a non-idempotent txn); the next attempt likely picks a live
    /// member. The same holds for "no leader": etcd's require-leader check refuses the request
    /// before handling it (a member cut off from the others, or an election under way), and
    /// for "too many requests": etcd refuses it before proposing it when its applied index
    /// lags the committed one (thousands of agents granting leases at a cold start). That one
    /// is a member saying "slow down", so it is resent with a growing, jittered pause for as
    /// long as the deadline allows, and the last refusal is returned if it never clears. Any
    /// other failure is returned as is: the request may have been applied.
    pub(super) async fn send<T, F, Fut>(&self, mut request: F) -> std::result::Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, ec::Error>>,
    {
        let attempts = 2 * self.endpoint_count + 1;
        let started = tokio::time::Instant::now();
        let run = async {
            let mut attempt = 1;
            let mut busy_pause = BUSY_PAUSE_FIRST;
            loop {
                match request().await {
                    Err(e)
                        if attempt < attempts && (is_connect_failure(&e) || is_no_leader(&e)) =>
                    {
                        tokio::time::sleep(RETRY_PAUSE * attempt).await;
                        attempt += 1;
                    }
                    Err(e) if is_too_many_requests(&e) => {
                        let pause = jittered(busy_pause);
                        // Leave the last refusal to the caller rather than a bare timeout.
                        if started.elapsed() + pause >= REQUEST_TIMEOUT {
                            return Err(e);
                        }
                        tokio::time::sleep(pause).await;
                        busy_pause = (busy_pause * 2).min(BUSY_PAUSE_MAX);
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CallError::Etcd(e)),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Turn a failed call into a [`StoreError`], for failures without a more specific meaning
    /// at the call site. `what` names the operation and key, never a value.
    pub(super) fn fail(&self, what: impl fmt::Display, e: CallError) -> StoreError {
        let eps = &self.endpoints;
        match e {
            CallError::Timeout => StoreError::Unavailable(format!(
                "etcd at {eps}: {what}: no answer within {REQUEST_TIMEOUT:?}"
            )),
            CallError::Etcd(e) => {
                if is_permission_denied(&e) {
                    StoreError::Denied(format!(
                        "etcd at {eps}: {what}: this identity (the common name of \
                         --store-cert) has no role that allows it; see docs/security.md"
                    ))
                } else if is_transport(&e) || is_too_many_requests(&e) {
                    StoreError::Unavailable(format!("etcd at {eps}: {what}: {}", describe(&e)))
                } else {
                    StoreError::Backend(format!("etcd at {eps}: {what}: {}", describe(&e)))
                }
            }
        }
    }
}

/// A pause between half and all of `pause`, so that many clients refused together (a fleet
/// of agents at a cold start) do not come back together.
fn jittered(pause: Duration) -> Duration {
    let fraction =
        getrandom::u32().map_or(0.75, |r| 0.5 + f64::from(r) / f64::from(u32::MAX) / 2.0);
    pause.mul_f64(fraction)
}

/// Why a call failed: etcd (or the transport) said so, or it did not answer in time.
pub(super) enum CallError {
    Etcd(ec::Error),
    Timeout,
}

/// Wait for one answer on an open stream under [`REQUEST_TIMEOUT`].
pub(super) async fn deadline<T>(
    fut: impl Future<Output = std::result::Result<T, ec::Error>>,
) -> std::result::Result<T, CallError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::Etcd(e)),
        Err(_) => Err(CallError::Timeout),
    }
}
