//! Loopback ports for the servers.

use std::net::{Ipv4Addr, TcpListener};

/// A port on 127.0.0.1 that is free right now. The kernel picks it (bind to port 0); the listener
/// is closed before the server binds, so another process can, rarely, take it in between: the
/// servers' start-up retries with a new port when their log says the address is in use.
pub fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("cannot bind a port on 127.0.0.1");
    listener.local_addr().expect("a bound listener has an address").port()
}

/// How many times a server start is retried when its port was taken between choice and bind.
pub const PORT_ATTEMPTS: usize = 5;
