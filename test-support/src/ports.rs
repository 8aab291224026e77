//! Loopback ports free right now, for servers a test starts (etcd, ZooKeeper, the operator's
//! metrics, a VM's forwarded ssh). Another process may take one before the server binds it:
//! the servers' starters retry on a clash.

use std::net::{TcpListener, UdpSocket};

/// A loopback TCP port free right now.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct loopback TCP ports free right now: all listeners are held at once, so the
/// ports differ.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind a loopback port: {e}"))
        })
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .unwrap_or_else(|e| panic!("local address of a listener: {e}"))
                .port()
        })
        .collect()
}

/// A loopback UDP port free right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free loopback UDP port: {e}"))
}
