//! Cutting one etcd member off from the others on loopback, while its client port keeps
//! answering: a network partition as that member lives it (alive, serving from data that
//! stops moving, with no leader), which is what etcd's "require leader" exists for.
//!
//! Every member of an [`EtcdCluster`](crate::etcd::EtcdCluster) advertises a peer URL that
//! is a proxy in this process. Connections *to* member m all pass m's proxy. Connections
//! *from* m pass the other members' proxies, so the proxy tells them apart by the header
//! etcd's peer transport puts on every request it sends (`X-Server-From: <member id>`), read
//! from the first request of the connection. A request without it (a version check) passes
//! unless it goes to the cut member.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a new peer connection may take to send its first request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// More header bytes than this is not etcd's peer transport: the connection is dropped.
const MAX_HEADER: usize = 64 << 10;
/// How often the accept loops look at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// The peer proxies of one cluster and which member, if any, is cut off.
pub struct Partition {
    shared: Arc<Shared>,
    /// Each member's proxy port (what the member advertises to its peers).
    ports: Vec<u16>,
    /// The proxies' listeners not yet forwarding (a member's real port is known only once
    /// it is chosen).
    pending: Mutex<Vec<Option<TcpListener>>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    /// The member cut off from the others.
    cut: Option<usize>,
    /// Each member's raft id (hex, as `X-Server-From` carries it), once known.
    ids: BTreeMap<usize, String>,
    /// Live proxied connections, so a cut closes the ones it forbids.
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
}

struct Conn {
    to: usize,
    from: Option<String>,
    client: TcpStream,
    server: TcpStream,
}

impl State {
    fn forbids(&self, to: usize, from: Option<&str>) -> bool {
        let Some(cut) = self.cut else {
            return false;
        };
        to == cut || from.is_some_and(|f| self.ids.get(&cut).is_some_and(|id| id == f))
    }
}

impl Partition {
    /// One proxy per member, listening on a free loopback port each; nothing is forwarded
    /// until [`Partition::forward`] names the member's real peer port.
    pub fn new(members: usize) -> Partition {
        let shared = Arc::new(Shared::default());
        let mut ports = Vec::with_capacity(members);
        let mut pending = Vec::with_capacity(members);
        for _ in 0..members {
            let listener = TcpListener::bind("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("bind an etcd peer proxy on loopback: {e}"));
            let port = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("an etcd peer proxy's port: {e}"))
                .port();
            ports.push(port);
            pending.push(Some(listener));
        }
        Partition {
            shared,
            ports,
            pending: Mutex::new(pending),
        }
    }

    /// Member `member`'s proxy port: the port it advertises to its peers.
    pub fn port(&self, member: usize) -> u16 {
        self.ports[member]
    }

    /// Forward member `member`'s proxy to its real peer port.
    pub fn forward(&self, member: usize, target_port: u16) {
        let shared = self.shared.clone();
        let listener = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(member)
            .and_then(Option::take);
        let Some(listener) = listener else {
            return; // already forwarding (a restarted member keeps its ports)
        };
        std::thread::spawn(move || accept_loop(&shared, &listener, member, target_port));
    }

    /// Record member `member`'s raft id (from its log), so its outgoing connections can be
    /// recognised.
    pub fn set_id(&self, member: usize, id: String) {
        lock(&self.shared).ids.insert(member, id);
    }

    /// Cut member `member` off from the others: its peer connections close, new ones are
    /// refused, its client port keeps answering.
    pub fn isolate(&self, member: usize) {
        let mut state = lock(&self.shared);
        state.cut = Some(member);
        let doomed: Vec<u64> = state
            .conns
            .iter()
            .filter(|(_, c)| state.forbids(c.to, c.from.as_deref()))
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            if let Some(c) = state.conns.remove(&id) {
                let _ = c.client.shutdown(Shutdown::Both);
                let _ = c.server.shutdown(Shutdown::Both);
            }
        }
    }

    /// Join the cut member to the others again.
    pub fn heal(&self) {
        lock(&self.shared).cut = None;
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut state = lock(&self.shared);
        for (_, c) in std::mem::take(&mut state.conns) {
            let _ = c.client.shutdown(Shutdown::Both);
            let _ = c.server.shutdown(Shutdown::Both);
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panicking proxy thread must not wedge the test: the state stays usable.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener, member: usize, target_port: u16) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let shared = shared.clone();
                std::thread::spawn(move || proxy(&shared, client, member, target_port));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

/// One peer connection: read the first request's headers, refuse it if the cut forbids
/// it, else forward both ways until either side closes.
fn proxy(shared: &Arc<Shared>, mut client: TcpStream, to: usize, target_port: u16) {
    if lock(shared).forbids(to, None) {
        return;
    }
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(HEADER_TIMEOUT));
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let from = server_from(&head);
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target_port)) else {
        return;
    };
    let _ = client.set_read_timeout(None);
    if server.write_all(&head).is_err() {
        return;
    }
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let id = {
        let mut state = lock(shared);
        // Checked again under the lock: a cut made since the accept must not be missed.
        if state.forbids(to, from.as_deref()) {
            return;
        }
        let id = state.next_conn;
        state.next_conn += 1;
        let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        state.conns.insert(
            id,
            Conn {
                to,
                from,
                client: c,
                server: s,
            },
        );
        id
    };
    let upstream = std::thread::spawn(move || copy(client2, server2));
    copy(server, client);
    let _ = upstream.join();
    lock(shared).conns.remove(&id);
}

/// Bytes up to and including the first blank line (the request's headers), or `None` if
/// the peer closed, went quiet, or sent something that is not HTTP headers.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_HEADER {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// The `X-Server-From` header's value (etcd's peer transport: the sender's member id).
fn server_from(head: &[u8]) -> Option<String> {
    String::from_utf8_lossy(head).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("x-server-from")
            .then(|| value.trim().to_owned())
    })
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_read_from_the_peer_header() {
        let head = b"POST /raft HTTP/1.1\r\nHost: x\r\nX-Server-From: ef830e3ec9013480\r\n\r\n";
        assert_eq!(server_from(head).as_deref(), Some("ef830e3ec9013480"));
        assert_eq!(server_from(b"GET /version HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn a_cut_forbids_everything_to_and_from_the_member_only() {
        let mut s = State::default();
        s.ids.insert(0, "a".into());
        s.ids.insert(1, "b".into());
        assert!(!s.forbids(0, Some("b")));
        s.cut = Some(0);
        assert!(s.forbids(0, Some("b")), "to the cut member");
        assert!(s.forbids(1, Some("a")), "from the cut member");
        assert!(
            !s.forbids(1, Some("b")) && !s.forbids(2, None),
            "between the others"
        );
    }
}
