//! Watches: the server-side watch lives as long as its gRPC stream, so the stream we hand
//! out owns it, and ends with an error on compaction, cancellation or a transport failure.

use std::collections::VecDeque;

use etcd_client as ec;

use super::client::{deadline, EtcdStore};
use super::grpc::describe;
use super::kv::{convert_kv, key_string};
use crate::store::{EventKind, KeyValue, Result, Revision, StoreError, WatchEvent, WatchStream};

impl EtcdStore {
    pub(super) async fn open_watch(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<WatchStream> {
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
