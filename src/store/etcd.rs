//! etcd v3 backend: the production, distributed store.
//!
//! The [`Store`] trait was modelled on etcd v3, so this is mostly a mapping: revisions,
//! compares and watches are etcd's own. The parts that need care are:
//! - errors: etcd reports compaction, future revisions and missing leases as gRPC status
//!   codes with fixed messages; we turn them into [`StoreError`] variants, and everything
//!   transport-related into [`StoreError::Unavailable`] naming the endpoints;
//! - hangs: the client's balanced channel waits forever when no endpoint is reachable, so
//!   every request runs under our own deadline;
//! - watches: the server-side watch lives as long as its gRPC stream, so the stream we hand
//!   out owns it, and ends with an error on compaction, cancellation or a transport failure.
//!
//! Values never appear in errors or logs (they may be secrets); keys and prefixes do.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client as ec;

use super::{
    CompareOp, CompareTarget, EventKind, KeyValue, Lease, LeaseId, ListResult, Op, Result,
    Revision, Store, StoreError, Txn, TxnResult, WatchEvent, WatchStream,
};

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
/// How long to look for the compacted revision when a read failed for compaction.
const COMPACT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`Store`] backed by an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    // The typed clients share one balanced channel; each call clones one because the
    // client methods take `&mut self`.
    kv: ec::KvClient,
    watch: ec::WatchClient,
    lease: ec::LeaseClient,
    /// `h1:p1,h2:p2`, for error messages.
    endpoints: String,
    /// How many endpoints the channel balances over (bounds the retries in `send`).
    endpoint_count: u32,
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
        if endpoints.is_empty() {
            return Err(StoreError::Config(
                "no etcd endpoint given: use etcd://host:port[,host:port]".into(),
            ));
        }
        let joined = endpoints.join(",");
        let options = ec::ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
        let client = match tokio::time::timeout(
            PROBE_TIMEOUT,
            ec::Client::connect(endpoints, Some(options)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e @ (ec::Error::InvalidUri(_) | ec::Error::InvalidArgs(_)))) => {
                return Err(StoreError::Config(format!("etcd endpoints {joined}: {e}")));
            }
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "etcd at {joined}: connect: {e}"
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
            endpoints: joined,
            endpoint_count: u32::try_from(endpoints.len()).unwrap_or(u32::MAX / 4),
        };
        // The channel connects lazily, so only a request tells whether anyone is there.
        match tokio::time::timeout(PROBE_TIMEOUT, store.current_revision()).await {
            Ok(Ok(_)) => Ok(store),
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
    /// member. Any other failure is returned as is: the request may have been applied.
    async fn send<T, F, Fut>(&self, mut request: F) -> std::result::Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, ec::Error>>,
    {
        let attempts = 2 * self.endpoint_count + 1;
        let run = async {
            let mut attempt = 1;
            loop {
                match request().await {
                    Err(e) if attempt < attempts && is_connect_failure(&e) => {
                        tokio::time::sleep(RETRY_PAUSE * attempt).await;
                        attempt += 1;
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
    fn fail(&self, what: impl fmt::Display, e: CallError) -> StoreError {
        let eps = &self.endpoints;
        match e {
            CallError::Timeout => StoreError::Unavailable(format!(
                "etcd at {eps}: {what}: no answer within {REQUEST_TIMEOUT:?}"
            )),
            CallError::Etcd(e) => {
                if is_transport(&e) {
                    StoreError::Unavailable(format!("etcd at {eps}: {what}: {}", describe(&e)))
                } else {
                    StoreError::Backend(format!("etcd at {eps}: {what}: {}", describe(&e)))
                }
            }
        }
    }

    /// The oldest revision etcd still keeps, after a read was refused for compaction.
    ///
    /// etcd's "compacted" error does not say up to where; a watch from revision 1 does (its
    /// cancel response carries the compact revision). If that fails too, `fallback` is the
    /// best we know.
    async fn compacted_revision(&self, key: &str, fallback: Revision) -> Revision {
        let probe = async {
            let mut client = self.watch.clone();
            let opts = ec::WatchOptions::new().with_prefix().with_start_revision(1);
            let mut stream = client.watch(key, Some(opts)).await.ok()?;
            loop {
                let resp = stream.message().await.ok()??;
                if resp.compact_revision() != 0 {
                    return Some(resp.compact_revision());
                }
                // Events instead of a compaction notice: history from 1 is there after all
                // (a race with a restore); stop looking.
                if !resp.events().is_empty() || resp.canceled() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(COMPACT_PROBE_TIMEOUT, probe).await {
            Ok(Some(rev)) => rev,
            _ => fallback,
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    async fn current_revision(&self) -> Result<Revision> {
        // Any key will do: the header carries the store revision. Count-only keeps it cheap.
        let resp = self
            .send(|| {
                let mut kv = self.kv.clone();
                async move {
                    kv.get("\0", Some(ec::GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await
            .map_err(|e| self.fail("read the current revision", e))?;
        header_revision(resp.header())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .send(|| {
                let mut kv = self.kv.clone();
                async move { kv.get(key, None).await }
            })
            .await
            .map_err(|e| self.fail(format_args!("get {key:?}"), e))?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult> {
        let mut opts = ec::GetOptions::new().with_prefix();
        if let Some(rev) = revision {
            opts = opts.with_revision(rev);
        }
        let request = || {
            let mut kv = self.kv.clone();
            let opts = opts.clone();
            async move { kv.get(prefix, Some(opts)).await }
        };
        match self.send(request).await {
            Ok(resp) => {
                let kvs = resp
                    .kvs()
                    .iter()
                    .map(convert_kv)
                    .collect::<Result<Vec<_>>>()?;
                // The header revision is the store's current one even for a read in the past.
                let revision = match revision {
                    Some(rev) if rev > 0 => rev,
                    _ => header_revision(resp.header())?,
                };
                Ok(ListResult { kvs, revision })
            }
            Err(CallError::Etcd(e)) if is_compacted(&e) => {
                let requested = revision.unwrap_or_default();
                let compacted = self.compacted_revision(prefix, requested + 1).await;
                Err(StoreError::Compacted {
                    requested,
                    compacted,
                })
            }
            Err(CallError::Etcd(e)) if is_future_revision(&e) => {
                let current = self.current_revision().await?;
                Err(StoreError::FutureRevision {
                    requested: revision.unwrap_or_default(),
                    current,
                })
            }
            Err(e) => Err(self.fail(format_args!("list {prefix:?}"), e)),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let what = describe_txn(&txn);
        // etcd names no lease in its "lease not found"; report the first one the txn uses.
        let first_lease = txn
            .success
            .iter()
            .chain(&txn.failure)
            .find_map(|op| match op {
                Op::Put {
                    lease: Some(id), ..
                } => Some(*id),
                _ => None,
            });
        let compares: Vec<ec::Compare> = txn.compares.into_iter().map(to_etcd_compare).collect();
        let success: Vec<ec::TxnOp> = txn.success.into_iter().map(to_etcd_op).collect();
        let failure: Vec<ec::TxnOp> = txn.failure.into_iter().map(to_etcd_op).collect();
        let request = ec::Txn::new()
            .when(compares)
            .and_then(success)
            .or_else(failure);
        let send = || {
            let mut kv = self.kv.clone();
            let request = request.clone();
            async move { kv.txn(request).await }
        };
        match self.send(send).await {
            Ok(resp) => Ok(TxnResult {
                succeeded: resp.succeeded(),
                revision: header_revision(resp.header())?,
            }),
            Err(CallError::Etcd(e)) if is_lease_not_found(&e) => {
                Err(StoreError::LeaseNotFound(first_lease.unwrap_or(0)))
            }
            Err(e) => Err(self.fail(what, e)),
        }
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let what = format!("watch {prefix:?}");
        let mut opts = ec::WatchOptions::new().with_prefix();
        // Without a start revision etcd watches from "now" (current + 1), as the trait asks
        // for 0.
        if from_revision > 0 {
            opts = opts.with_start_revision(from_revision);
        }
        let request = || {
            let mut client = self.watch.clone();
            let opts = opts.clone();
            async move { client.watch(prefix, Some(opts)).await }
        };
        let mut inner = self.send(request).await.map_err(|e| self.fail(&what, e))?;
        let mut state = WatchState {
            inner: None,
            pending: VecDeque::new(),
            next_revision: from_revision,
            done: false,
            what: what.clone(),
            endpoints: self.endpoints.clone(),
        };
        // Wait for etcd to confirm the watch, so that when this returns the watch is in place:
        // a write made after `watch(prefix, 0)` returns is guaranteed to be seen.
        match deadline(inner.message()).await {
            Ok(Some(resp)) => state.absorb(resp),
            Ok(None) => {
                return Err(StoreError::Unavailable(format!(
                    "etcd at {}: {what}: stream closed",
                    self.endpoints
                )))
            }
            Err(e) => return Err(self.fail(&what, e)),
        }
        state.inner = Some(inner);
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next().await?;
                Some((item, state))
            },
        )))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        // etcd leases are whole seconds: round up so a lease never lives shorter than asked.
        let secs = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0))
            .max(1);
        let secs = i64::try_from(secs)
            .map_err(|_| StoreError::Config(format!("lease TTL {ttl:?} is too long")))?;
        let resp = self
            .send(|| {
                let mut lease = self.lease.clone();
                async move { lease.grant(secs, None).await }
            })
            .await
            .map_err(|e| self.fail("grant a lease", e))?;
        if !resp.error().is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd at {}: grant a lease: {}",
                self.endpoints,
                resp.error()
            )));
        }
        // etcd may raise the TTL to its minimum (1.5 × election timeout): report what it chose.
        let granted = u64::try_from(resp.ttl()).unwrap_or(secs.unsigned_abs());
        Ok(Lease {
            id: resp.id(),
            ttl: Duration::from_secs(granted),
        })
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Duration> {
        let what = format!("keep lease {id} alive");
        // etcd-client opens the keep-alive stream with one refresh and reads its answer itself,
        // failing on a TTL of 0 (lease not found) but keeping the TTL to itself; a second
        // refresh on the same stream tells us the TTL. Dropping the keeper closes the stream.
        let (mut keeper, mut responses) = match self
            .send(|| {
                let mut lease = self.lease.clone();
                async move { lease.keep_alive(id).await }
            })
            .await
        {
            Ok(pair) => pair,
            Err(CallError::Etcd(e)) if is_lease_not_found(&e) => {
                return Err(StoreError::LeaseNotFound(id))
            }
            Err(e) => return Err(self.fail(&what, e)),
        };
        deadline(keeper.keep_alive())
            .await
            .map_err(|e| self.fail(&what, e))?;
        match deadline(responses.message()).await {
            Ok(Some(resp)) if resp.ttl() > 0 => Ok(Duration::from_secs(resp.ttl().unsigned_abs())),
            Ok(Some(_)) => Err(StoreError::LeaseNotFound(id)),
            Ok(None) => Err(StoreError::Unavailable(format!(
                "etcd at {}: {what}: stream closed",
                self.endpoints
            ))),
            Err(e) => Err(self.fail(&what, e)),
        }
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        let request = || {
            let mut lease = self.lease.clone();
            async move { lease.revoke(id).await }
        };
        match self.send(request).await {
            Ok(_) => Ok(()),
            Err(CallError::Etcd(e)) if is_lease_not_found(&e) => Err(StoreError::LeaseNotFound(id)),
            Err(e) => Err(self.fail(format_args!("revoke lease {id}"), e)),
        }
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let request = || {
            let mut kv = self.kv.clone();
            async move { kv.compact(revision, None).await }
        };
        match self.send(request).await {
            Ok(_) => Ok(()),
            // History before `revision` is already gone: the caller got what it asked for.
            Err(CallError::Etcd(e)) if is_compacted(&e) => Ok(()),
            Err(CallError::Etcd(e)) if is_future_revision(&e) => {
                let current = self.current_revision().await?;
                Err(StoreError::FutureRevision {
                    requested: revision,
                    current,
                })
            }
            Err(e) => Err(self.fail(format_args!("compact at revision {revision}"), e)),
        }
    }
}

/// The state behind a [`WatchStream`]: owns etcd's watch stream (dropping it cancels the
/// server-side watch) and the events of a response not yet handed out.
struct WatchState {
    inner: Option<ec::WatchStream>,
    pending: VecDeque<Result<WatchEvent>>,
    /// The revision the next event must have at least: a compaction error reports it as the
    /// revision the caller asked for.
    next_revision: Revision,
    /// Set once an error is queued: it is the last item of the stream.
    done: bool,
    what: String,
    endpoints: String,
}

impl WatchState {
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                // Free the server-side watch now rather than when the caller drops the stream.
                self.inner = None;
                return None;
            }
            let inner = self.inner.as_mut()?;
            // No deadline here: a quiet prefix is normal. A dead server is noticed by the
            // transport (connection reset, or HTTP/2 keep-alive pings going unanswered).
            match inner.message().await {
                Ok(Some(resp)) => self.absorb(resp),
                Ok(None) => self.finish(StoreError::Unavailable(format!(
                    "etcd at {}: {}: stream closed by the server",
                    self.endpoints, self.what
                ))),
                Err(e) => {
                    let msg = format!(
                        "etcd at {}: {}: {}",
                        self.endpoints,
                        self.what,
                        describe(&e)
                    );
                    // Whatever broke the stream, the watch cannot go on; the caller re-watches
                    // from its last revision, which is what `Unavailable` asks of it.
                    self.finish(StoreError::Unavailable(msg));
                }
            }
        }
    }

    /// Queue the events of one response, or the error that ends the stream.
    fn absorb(&mut self, resp: ec::WatchResponse) {
        if resp.compact_revision() != 0 {
            self.finish(StoreError::Compacted {
                requested: self.next_revision,
                compacted: resp.compact_revision(),
            });
            return;
        }
        if resp.canceled() {
            let reason = if resp.cancel_reason().is_empty() {
                "no reason given"
            } else {
                resp.cancel_reason()
            };
            self.finish(StoreError::Unavailable(format!(
                "etcd at {}: {}: canceled by the server: {reason}",
                self.endpoints, self.what
            )));
            return;
        }
        if resp.created() && self.next_revision == 0 {
            // A watch "from now on" starts after the revision etcd had when it created it.
            if let Some(h) = resp.header() {
                self.next_revision = h.revision() + 1;
            }
        }
        // Creation notices and progress notifications carry no events and need nothing else.
        for event in resp.events() {
            match convert_event(event) {
                Ok(ev) => {
                    self.next_revision = ev.revision() + 1;
                    self.pending.push_back(Ok(ev));
                }
                Err(e) => {
                    self.finish(e);
                    return;
                }
            }
        }
    }

    fn finish(&mut self, e: StoreError) {
        self.pending.push_back(Err(e));
        self.done = true;
    }
}

/// Why a call failed: etcd (or the transport) said so, or it did not answer in time.
enum CallError {
    Etcd(ec::Error),
    Timeout,
}

/// Wait for one answer on an open stream under [`REQUEST_TIMEOUT`].
async fn deadline<T>(
    fut: impl Future<Output = std::result::Result<T, ec::Error>>,
) -> std::result::Result<T, CallError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::Etcd(e)),
        Err(_) => Err(CallError::Timeout),
    }
}

/// gRPC status codes (fixed by the gRPC spec). etcd-client does not re-export tonic's `Code`,
/// and depending on tonic only for its names is not worth a version to keep in step.
mod code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNAVAILABLE: i32 = 14;
}

/// The gRPC code and message of a status error, or `None` for other errors.
fn status(e: &ec::Error) -> Option<(i32, &str)> {
    match e {
        ec::Error::GRpcStatus(s) => Some((s.code() as i32, s.message())),
        _ => None,
    }
}

// etcd's fixed error texts (etcdserver/api/v3rpc/rpctypes); the codes alone are ambiguous.
fn is_compacted(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::OUT_OF_RANGE, m)) if m.contains("required revision has been compacted"))
}

fn is_future_revision(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::OUT_OF_RANGE, m)) if m.contains("required revision is a future revision"))
}

fn is_lease_not_found(e: &ec::Error) -> bool {
    match e {
        ec::Error::GRpcStatus(s) => {
            s.code() as i32 == code::NOT_FOUND && s.message().contains("lease not found")
        }
        // What etcd-client reports when a keep-alive is answered with TTL 0.
        ec::Error::LeaseKeepAliveError(m) => m.contains("not found"),
        _ => false,
    }
}

/// Whether the request failed to connect, i.e. never reached etcd. tonic reports this as
/// Unavailable with the connector's message and drops the source error, so only the text
/// tells it apart from an Unavailable answered by etcd (e.g. "no leader"), after which the
/// request may have been applied.
fn is_connect_failure(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::UNAVAILABLE, m)) if m.contains("connect error"))
}

/// Whether the failure is about reaching etcd (retry later) rather than the request itself.
fn is_transport(e: &ec::Error) -> bool {
    match e {
        ec::Error::GRpcStatus(s) => match s.code() as i32 {
            code::UNAVAILABLE | code::DEADLINE_EXCEEDED | code::CANCELLED | code::ABORTED => true,
            // tonic reports connection failures as Unknown with the transport error as source;
            // an Unknown from the server itself has no source.
            code::UNKNOWN => std::error::Error::source(s).is_some(),
            _ => false,
        },
        ec::Error::TransportError(_) | ec::Error::IoError(_) => true,
        // The client's request channel to a stream closed: the stream is gone.
        ec::Error::WatchError(_) | ec::Error::LeaseKeepAliveError(_) => true,
        _ => false,
    }
}

/// An error's text for our messages: for a gRPC status its message (etcd's own error text,
/// or tonic's for a transport failure), as the full `Display` of a status adds metadata.
fn describe(e: &ec::Error) -> String {
    match e {
        ec::Error::GRpcStatus(s) if !s.message().is_empty() => s.message().to_owned(),
        ec::Error::GRpcStatus(s) => s.code().description().to_owned(),
        other => other.to_string(),
    }
}

fn header_revision(header: Option<&ec::ResponseHeader>) -> Result<Revision> {
    header
        .map(ec::ResponseHeader::revision)
        .ok_or_else(|| StoreError::Backend("etcd answered without a response header".into()))
}

fn key_string(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec()).map_err(|_| {
        StoreError::Backend(format!(
            "etcd holds a key that is not UTF-8: {:?}",
            String::from_utf8_lossy(key)
        ))
    })
}

fn convert_kv(kv: &ec::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(kv.key())?,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}

fn convert_event(event: &ec::Event) -> Result<WatchEvent> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Backend("etcd sent a watch event without a key".into()))?;
    match event.event_type() {
        ec::EventType::Put => Ok(WatchEvent {
            kind: EventKind::Put,
            kv: convert_kv(kv)?,
        }),
        // Spelled out rather than converted so a delete looks the same from every backend.
        ec::EventType::Delete => Ok(WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key_string(kv.key())?,
                value: Vec::new(),
                create_revision: 0,
                mod_revision: kv.mod_revision(),
                version: 0,
                lease: None,
            },
        }),
    }
}

fn to_etcd_compare(c: super::Compare) -> ec::Compare {
    let op = match c.op {
        CompareOp::Equal => ec::CompareOp::Equal,
        CompareOp::NotEqual => ec::CompareOp::NotEqual,
        CompareOp::Less => ec::CompareOp::Less,
        CompareOp::Greater => ec::CompareOp::Greater,
    };
    match c.target {
        CompareTarget::ModRevision(rev) => ec::Compare::mod_revision(c.key, op, rev),
        CompareTarget::CreateRevision(rev) => ec::Compare::create_revision(c.key, op, rev),
        CompareTarget::Version(v) => ec::Compare::version(c.key, op, v),
        CompareTarget::Value(v) => ec::Compare::value(c.key, op, v),
    }
}

fn to_etcd_op(op: Op) -> ec::TxnOp {
    match op {
        Op::Put { key, value, lease } => ec::TxnOp::put(
            key,
            value,
            lease.map(|id| ec::PutOptions::new().with_lease(id)),
        ),
        Op::Delete { key } => ec::TxnOp::delete(key, None),
        // etcd-client computes the range end for the prefix.
        Op::DeletePrefix { prefix } => {
            ec::TxnOp::delete(prefix, Some(ec::DeleteOptions::new().with_prefix()))
        }
    }
}

/// A txn for error messages: its size and first key, no values.
fn describe_txn(txn: &Txn) -> String {
    let first_key = txn
        .compares
        .first()
        .map(|c| c.key.as_str())
        .or_else(|| {
            txn.success
                .iter()
                .chain(&txn.failure)
                .next()
                .map(|op| match op {
                    Op::Put { key, .. } | Op::Delete { key } => key.as_str(),
                    Op::DeletePrefix { prefix } => prefix.as_str(),
                })
        })
        .unwrap_or("");
    format!(
        "txn ({} compares, {}+{} ops, first key {first_key:?})",
        txn.compares.len(),
        txn.success.len(),
        txn.failure.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn connect_to_a_dead_endpoint_fails_fast_with_unavailable() {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let err = EtcdStore::connect(std::slice::from_ref(&endpoint))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
        match err {
            StoreError::Unavailable(msg) => {
                assert!(msg.contains(&endpoint), "message lacks the endpoint: {msg}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_without_endpoints_is_a_config_error() {
        assert!(matches!(
            EtcdStore::connect(&[]).await,
            Err(StoreError::Config(_))
        ));
    }

    #[test]
    fn txn_description_names_keys_not_values() {
        let txn = Txn::new()
            .when(super::super::Compare::absent("/k"))
            .then(Op::put("/k", "s3cret"));
        let d = describe_txn(&txn);
        assert!(d.contains("/k") && !d.contains("s3cret"), "{d}");
    }
}
