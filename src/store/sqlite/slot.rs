//! One watch as the hub's poller keeps it: its key range, the next revision it needs, and
//! what was read for it but did not fit in its channel yet.
//!
//! A watch is *live* while it has been handed every revision the poller has read
//! (`next >= cursor`) and nothing is left over: it then takes its share of each new batch
//! the poller reads for everybody. A watch whose reader is slow (its channel full when a
//! batch comes) is left out of the fan-out rather than waited for, so it cannot stall the
//! others, and is *behind*: once its reader makes room it catches up from the log with
//! reads of its own key range, up to where the fan-out is, and is live again. This is etcd's
//! split of synced and unsynced watchers. Nothing is skipped or repeated: `next` moves only
//! past revisions whose events were queued. If the history a behind watch needs is
//! compacted meanwhile, it ends with `Compacted`, as a slow etcd watcher does: the reader
//! relists. The alternative, ending a watch as soon as its buffer overflows, would make
//! every burst a relist for a reader that is only briefly slower than the writes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::db::KeyRange;
use super::{Result, Revision, WatchEvent};

/// Counts something live (watches, pollers); decremented when the guard goes, however.
pub(super) struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    pub(super) fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) struct Slot {
    pub(super) range: KeyRange,
    /// For logs only.
    pub(super) prefix: String,
    /// The first revision not yet queued (in `pending` or the channel).
    pub(super) next: Revision,
    /// Read for this watch but not yet taken by the channel, oldest first.
    pending: VecDeque<Result<WatchEvent>>,
    tx: mpsc::Sender<Result<WatchEvent>>,
    /// Set by the poller while this watch waits for its reader to make room; the stream
    /// clears it and wakes the poller once it has (see `stream.rs`).
    lagging: Arc<AtomicBool>,
    /// Nothing more is read for it: it ends once `pending` is delivered.
    ended: bool,
    _live: LiveGuard,
}

impl Slot {
    pub(super) fn new(
        range: KeyRange,
        prefix: String,
        next: Revision,
        tx: mpsc::Sender<Result<WatchEvent>>,
        lagging: Arc<AtomicBool>,
        live: LiveGuard,
    ) -> Self {
        Self {
            range,
            prefix,
            next,
            pending: VecDeque::new(),
            tx,
            lagging,
            ended: false,
            _live: live,
        }
    }

    /// Whether the poller can drop it: its reader is gone, or it has ended and said all.
    pub(super) fn finished(&self) -> bool {
        self.tx.is_closed() || (self.ended && self.pending.is_empty())
    }

    /// Whether it needs a catch-up read now: behind the fan-out at `cursor`, nothing left
    /// over, and room in its channel.
    pub(super) fn wants_catch_up(&self, cursor: Revision) -> bool {
        !self.ended && self.next < cursor && self.pending.is_empty() && self.tx.capacity() > 0
    }

    /// A batch of the live fan-out: every event of revisions `from..to`, all keys. Taken
    /// only by a live watch (`next` in that span, nothing left over); a watch from a later
    /// revision waits, one behind catches up on its own.
    pub(super) fn offer(&mut self, from: Revision, to: Revision, events: &[WatchEvent]) {
        if self.ended || self.next < from || self.next >= to || !self.pending.is_empty() {
            return;
        }
        let next = self.next;
        self.pending.extend(
            events
                .iter()
                .filter(|e| e.revision() >= next && self.range.contains(e.kv.key.as_bytes()))
                .cloned()
                .map(Ok),
        );
        self.next = to;
        self.flush();
    }

    /// The result of a catch-up read of this watch's range: events up to `next - 1`.
    pub(super) fn caught_up_to(&mut self, events: Vec<WatchEvent>, next: Revision) {
        self.pending.extend(events.into_iter().map(Ok));
        self.next = next;
        self.flush();
    }

    /// Ends the watch with `error`, after what is already queued.
    pub(super) fn end(&mut self, error: super::StoreError) {
        if self.ended {
            return;
        }
        self.pending.push_back(Err(error));
        self.ended = true;
        self.flush();
    }

    /// Moves what is left over into the channel, as far as it has room. Never blocks.
    pub(super) fn flush(&mut self) {
        while let Some(item) = self.pending.pop_front() {
            match self.tx.try_send(item) {
                Ok(()) => {}
                Err(TrySendError::Full(item)) => {
                    self.pending.push_front(item);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    self.pending.clear();
                    self.ended = true;
                    return;
                }
            }
        }
    }

    /// Tells the stream whether this watch waits for room (behind the fan-out at `cursor`,
    /// or with something left over). Returns whether there is enough room already that the
    /// poller should not wait for the stream to say so: the stream may have made it
    /// before it saw the flag.
    pub(super) fn mark_lagging(&self, cursor: Revision) -> bool {
        let lagging = !self.pending.is_empty() || (!self.ended && self.next < cursor);
        self.lagging.store(lagging, Ordering::SeqCst);
        lagging && self.tx.capacity() > CHANNEL_HALF
    }
}

/// Room in a watch's channel worth waking the poller for.
pub(super) const CHANNEL_HALF: usize = super::watch::CHANNEL_CAPACITY / 2;
