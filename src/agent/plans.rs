//! Following the node's plan slices in the store: list, then watch from the next revision;
//! relist when the watch ends (compaction, a lost connection), with a growing pause while
//! the store cannot be reached. The latest slices are published on a `watch` channel, only
//! when they changed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::store::{EventKind, Store};

/// The keys under `plans/<node>/`, keyed by their last segment: each controller's slice,
/// and the manifest that names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slices {
    /// False until the first list succeeded: an empty map then means "not known yet".
    pub loaded: bool,
    pub slices: BTreeMap<String, Vec<u8>>,
}

pub async fn follow(
    store: Arc<dyn Store>,
    prefix: String,
    tx: watch::Sender<Slices>,
    connected: Arc<AtomicBool>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let listed = match store.list(&prefix, None).await {
            Ok(l) => l,
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot list plans; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut slices: BTreeMap<String, Vec<u8>> = listed
            .kvs
            .into_iter()
            .filter_map(|kv| {
                let c = kv.key.strip_prefix(&prefix)?.to_owned();
                Some((c, kv.value))
            })
            .collect();
        publish(&tx, &slices);
        let mut stream = match store.watch(&prefix, listed.revision + 1).await {
            Ok(s) => s,
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot watch plans; relisting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        connected.store(true, Ordering::Relaxed);
        pause = Duration::from_millis(100);
        'events: while let Some(first) = stream.next().await {
            // The events of one transaction (a slice and the manifest that names it)
            // arrive together: apply every event already here before publishing, so the
            // merger never sees a slice without its manifest.
            let mut batch = vec![first];
            while let Some(Some(more)) = stream.next().now_or_never() {
                batch.push(more);
            }
            for ev in batch {
                match ev {
                    Ok(ev) => {
                        let Some(c) = ev.kv.key.strip_prefix(&prefix) else {
                            continue;
                        };
                        match ev.kind {
                            EventKind::Put => {
                                slices.insert(c.to_owned(), ev.kv.value);
                            }
                            EventKind::Delete => {
                                slices.remove(c);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "plan watch ended; relisting");
                        break 'events;
                    }
                }
            }
            publish(&tx, &slices);
        }
        if tx.is_closed() {
            return;
        }
    }
}

fn publish(tx: &watch::Sender<Slices>, slices: &BTreeMap<String, Vec<u8>>) {
    tx.send_if_modified(|cur| {
        if cur.loaded && cur.slices == *slices {
            return false;
        }
        cur.loaded = true;
        cur.slices = slices.clone();
        true
    });
}
