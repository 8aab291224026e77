//! Reading etcd's errors: etcd reports compaction, future revisions and missing leases as
//! gRPC status codes with fixed messages, and transport failures in several shapes.

use etcd_client as ec;

/// gRPC status codes (fixed by the gRPC spec). etcd-client does not re-export tonic's `Code`,
/// and depending on tonic only for its names is not worth a version to keep in step.
mod code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
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
pub(super) fn is_compacted(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::OUT_OF_RANGE, m)) if m.contains("required revision has been compacted"))
}

pub(super) fn is_future_revision(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::OUT_OF_RANGE, m)) if m.contains("required revision is a future revision"))
}

pub(super) fn is_lease_not_found(e: &ec::Error) -> bool {
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
pub(super) fn is_connect_failure(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::UNAVAILABLE, m)) if m.contains("connect error"))
}

/// Whether etcd refused the request for want of a leader (`rpctypes.ErrGRPCNoLeader`, which
/// the require-leader check answers before the request is handled).
pub(super) fn is_no_leader(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::UNAVAILABLE, m)) if m.contains("no leader"))
}

/// Whether etcd refused the request as "too many requests" (`rpctypes.ErrGRPCTooManyRequests`):
/// its applied index lags the committed one by more than it allows, checked before the
/// request is proposed, so nothing was applied. By its text (as for "no leader").
pub(super) fn is_too_many_requests(e: &ec::Error) -> bool {
    match status(e) {
        Some((_, m)) => m.contains("too many requests"),
        None => e.to_string().contains("too many requests"),
    }
}

/// Whether etcd's auth refused the request (`etcdserver: permission denied`, or a user
/// that does not exist for a certificate's common name).
pub(super) fn is_permission_denied(e: &ec::Error) -> bool {
    matches!(status(e), Some((code::PERMISSION_DENIED, _)))
        || matches!(status(e), Some((_, m)) if m.contains("permission denied") || m.contains("user name not found"))
}

/// Whether the failure is about reaching etcd (retry later) rather than the request itself.
pub(super) fn is_transport(e: &ec::Error) -> bool {
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
pub(super) fn describe(e: &ec::Error) -> String {
    match e {
        // A transport failure's message is tonic's summary ("h2 protocol error: http2
        // error"); what actually happened (a GOAWAY, a reset, its reason) is in the sources.
        ec::Error::GRpcStatus(s) if !s.message().is_empty() => {
            let mut text = s.message().to_owned();
            let mut source = std::error::Error::source(s);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text
        }
        ec::Error::GRpcStatus(s) => s.code().description().to_owned(),
        other => other.to_string(),
    }
}
