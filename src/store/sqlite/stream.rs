//! The reader's end of a watch: the channel the hub's poller fills, and the two things the
//! poller cannot see for itself, because it never waits on a reader: that a lagging reader
//! made room, and that a reader went away (so its slot is freed at once, not at the next
//! tick).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use super::hub::Hub;
use super::slot::CHANNEL_HALF;
use super::{Result, WatchEvent};

pub(super) struct HubStream {
    rx: mpsc::Receiver<Result<WatchEvent>>,
    /// Shared with the watch's slot: set while the poller waits for room.
    lagging: Arc<AtomicBool>,
    /// Keeps the hub, and so the poller serving this watch, alive as long as the stream.
    hub: Arc<Hub>,
}

impl HubStream {
    pub(super) fn new(
        rx: mpsc::Receiver<Result<WatchEvent>>,
        lagging: Arc<AtomicBool>,
        hub: Arc<Hub>,
    ) -> Self {
        Self { rx, lagging, hub }
    }
}

impl Stream for HubStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.rx.poll_recv(cx));
        // Half empty, not empty: the poller refills while the reader works through the rest.
        if item.is_some()
            && this.lagging.load(Ordering::SeqCst)
            && this.rx.len() <= CHANNEL_HALF
            && this.lagging.swap(false, Ordering::SeqCst)
        {
            this.hub.wake();
        }
        Poll::Ready(item)
    }
}

impl Drop for HubStream {
    fn drop(&mut self) {
        // Closed before the wake, so that the poller, when it looks, sees the slot is free.
        self.rx.close();
        self.hub.wake();
    }
}
