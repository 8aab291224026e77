//! The operator's Prometheus metrics (`prometheus-client`), served at `/metrics`.
//!
//! Label sets are created up front for every controller and reason, so a series reads 0
//! rather than being absent before its first event (absent and zero alert differently).

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Reconciled; whatever differed was written.
    Ok,
    /// The controller reported an error: retried with backoff.
    Error,
    /// The store failed the write (unavailable, an error): retried with backoff.
    WriteError,
    /// Another writer changed a key this reconcile writes (harmless): run again soon on
    /// the new state, without growing the backoff.
    Conflict,
    /// This process is no longer the leader: its write was refused.
    Fenced,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: String,
    pub result: ReconcileResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    CurrentRevision,
    Get,
    List,
    Txn,
    Watch,
    GrantLease,
    KeepAlive,
    RevokeLease,
    Compact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpResult {
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StoreOpLabels {
    pub op: StoreOp,
    pub result: OpResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchRestartReason {
    /// The watch's start revision was compacted: the reflector relisted.
    Compacted,
    /// The store went away or closed the stream: the reflector watched again.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WatchRestartLabels {
    pub reason: WatchRestartReason,
}

/// Label values in snake_case, as Prometheus conventions have them (the derive would keep
/// the variant names' CamelCase).
macro_rules! snake_case_values {
    ($($ty:ident { $($variant:ident => $name:literal),+ $(,)? })+) => {$(
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    )+};
}

snake_case_values! {
    ReconcileResult {
        Ok => "ok", Error => "error", WriteError => "write_error", Conflict => "conflict",
        Fenced => "fenced",
    }
    StoreOp {
        CurrentRevision => "current_revision", Get => "get", List => "list", Txn => "txn",
        Watch => "watch", GrantLease => "grant_lease", KeepAlive => "keep_alive",
        RevokeLease => "revoke_lease", Compact => "compact",
    }
    OpResult { Ok => "ok", Error => "error" }
    WatchRestartReason { Compacted => "compacted", Error => "error" }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~33 s: a pure reconcile plus its write is milliseconds; slow stores show up.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn store_histogram() -> Histogram {
    // 0.5 ms .. ~16 s: a local SQLite call to an etcd request timing out.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the operator, and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    queue_depth: Family<ControllerLabels, Gauge>,
    retries: Family<ControllerLabels, Counter>,
    leader: Gauge,
    leader_changes: Counter,
    store_ops: HistogramFamily<StoreOpLabels>,
    watch_restarts: Family<WatchRestartLabels, Counter>,
    writes: Counter,
    events: Counter,
    nodes: Gauge,
    nodes_without_agent: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "omtd_reconciles",
            "Reconciles run, by controller and result",
            reconciles.clone(),
        );
        let reconcile_duration: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(reconcile_histogram);
        registry.register(
            "omtd_reconcile_duration_seconds",
            "Time from taking a key off the queue to having written its outcome",
            reconcile_duration.clone(),
        );
        let queue_depth = Family::<ControllerLabels, Gauge>::default();
        registry.register(
            "omtd_queue_depth",
            "Keys waiting in a controller's queue",
            queue_depth.clone(),
        );
        let retries = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "omtd_reconcile_retries",
            "Reconciles scheduled again with backoff after a failure",
            retries.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "omtd_leader",
            "1 while this process holds the leader lease and reconciles, else 0",
            leader.clone(),
        );
        let leader_changes = Counter::default();
        registry.register(
            "omtd_leader_transitions",
            "Times this process became or stopped being the leader",
            leader_changes.clone(),
        );
        let store_ops: HistogramFamily<StoreOpLabels> =
            Family::new_with_constructor(store_histogram);
        registry.register(
            "omtd_store_operation_duration_seconds",
            "Latency of state store operations, by operation and result",
            store_ops.clone(),
        );
        let watch_restarts = Family::<WatchRestartLabels, Counter>::default();
        registry.register(
            "omtd_watch_restarts",
            "Times the reflector's watch ended and was started again, by reason",
            watch_restarts.clone(),
        );
        let writes = Counter::default();
        registry.register(
            "omtd_store_writes",
            "Write transactions the runtime committed (statuses, plan slices, events)",
            writes.clone(),
        );
        let events = Counter::default();
        registry.register(
            "omtd_events_recorded",
            "Events recorded or updated under events/",
            events.clone(),
        );
        let nodes = Gauge::default();
        registry.register(
            "omtd_nodes",
            "Node records in the desired state, as this process's cache sees them",
            nodes.clone(),
        );
        let nodes_without_agent = Gauge::default();
        registry.register(
            "omtd_nodes_without_agent",
            "Node records whose agent heartbeat lease is absent (agent stopped, host down or cut off, or never started)",
            nodes_without_agent.clone(),
        );
        for reason in [WatchRestartReason::Compacted, WatchRestartReason::Error] {
            let _ = watch_restarts.get_or_create(&WatchRestartLabels { reason });
        }
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            queue_depth,
            retries,
            leader,
            leader_changes,
            store_ops,
            watch_restarts,
            writes,
            events,
            nodes,
            nodes_without_agent,
        }
    }

    /// Creates the series of a controller so they read 0 before its first reconcile.
    pub fn register_controller(&self, controller: &str) {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        let _ = self.queue_depth.get_or_create(&labels);
        let _ = self.retries.get_or_create(&labels);
        let _ = self.reconcile_duration.get_or_create(&labels);
        for result in [ReconcileResult::Ok, ReconcileResult::Error] {
            let _ = self.reconciles.get_or_create(&ReconcileLabels {
                controller: controller.to_owned(),
                result,
            });
        }
    }

    pub fn reconciled(&self, controller: &str, result: ReconcileResult, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                controller: controller.to_owned(),
                result,
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn retried(&self, controller: &str) {
        self.retries
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .inc();
    }

    pub fn set_queue_depth(&self, controller: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn set_leader(&self, leader: bool) {
        let previous = self.leader.set(i64::from(leader));
        if previous != i64::from(leader) {
            self.leader_changes.inc();
        }
    }

    pub fn store_op(&self, op: StoreOp, ok: bool, took: Duration) {
        let result = if ok { OpResult::Ok } else { OpResult::Error };
        self.store_ops
            .get_or_create(&StoreOpLabels { op, result })
            .observe(took.as_secs_f64());
    }

    pub fn watch_restarted(&self, reason: WatchRestartReason) {
        self.watch_restarts
            .get_or_create(&WatchRestartLabels { reason })
            .inc();
    }

    /// Node records, and how many of them have no agent heartbeat (for the node-lost alert).
    pub fn set_nodes(&self, total: usize, without_agent: usize) {
        self.nodes.set(i64::try_from(total).unwrap_or(i64::MAX));
        self.nodes_without_agent
            .set(i64::try_from(without_agent).unwrap_or(i64::MAX));
    }

    pub fn wrote(&self) {
        self.writes.inc();
    }

    pub fn event_recorded(&self) {
        self.events.inc();
    }

    /// Write transactions committed so far (tests and the idle check read it).
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
