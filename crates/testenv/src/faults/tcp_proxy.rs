//! A fault-injecting TCP proxy between a function and a database server, on loopback.
//!
//! Point the secret's `port` at [`TcpFaultProxy::port`] (the host stays `localhost`, so verify-full
//! TLS still checks the server's own certificate end to end: the proxy sees only ciphertext).
//! Without rules it relays bytes untouched. Rules, armed for the connections opened *after*
//! [`TcpFaultProxy::arm`], act on the n-th chunk the client sends on the k-th connection (a chunk
//! is what one read returned: a TLS record or a few, a handshake message, a statement):
//!
//! - [`TcpFault::CutMidChunk`]: half of the chunk reaches the server, then both sides are closed
//!   (a statement cut in the middle: the server sees a truncated record and never runs it);
//! - [`TcpFault::CutAfterChunk`]: the whole chunk reaches the server, then both sides are closed
//!   before any answer can come back (the statement may have run; the client can't know);
//! - [`TcpFault::Blackhole`]: from that chunk on nothing is relayed either way and the sockets
//!   stay open, as when a network drops packets: the client waits until its own deadline;
//! - [`TcpFault::Delay`]: the chunk is held that long, then relayed.
//!
//! [`TcpFaultProxy::set_refusing`] makes every new connection close at once (a database that is
//! down behind a load balancer), and [`TcpFaultProxy::cut_all`] closes every live connection.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What happens to the chosen chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpFault {
    CutMidChunk,
    CutAfterChunk,
    Blackhole,
    Delay(Duration),
}

impl TcpFault {
    /// A short name for figures: `cut_mid_chunk`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            TcpFault::CutMidChunk => "tcp_cut_mid_chunk",
            TcpFault::CutAfterChunk => "tcp_cut_after_chunk",
            TcpFault::Blackhole => "tcp_blackhole",
            TcpFault::Delay(_) => "tcp_delay",
        }
    }
}

/// One fault: on which connection (1 = the first opened after arming; `None` = every one) and at
/// which chunk from the client (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRule {
    pub connection: Option<u64>,
    pub client_chunk: u64,
    pub fault: TcpFault,
}

#[derive(Default)]
struct Plan {
    rules: Vec<TcpRule>,
    /// Connections accepted since the rules were armed.
    armed_connections: u64,
}

struct Shared {
    target: SocketAddr,
    plan: Mutex<Plan>,
    refusing: AtomicBool,
    connections: AtomicU64,
    injected: Mutex<BTreeMap<&'static str, u64>>,
    /// Bumped by `cut_all`: every live relay watching it closes.
    cut_generation: watch::Sender<u64>,
}

impl Shared {
    fn count(&self, kind: &'static str) {
        *self.injected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(kind).or_default() += 1;
    }
}

pub struct TcpFaultProxy {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TcpFaultProxy {
    /// Listens on 127.0.0.1:<free port> and relays to 127.0.0.1:`target_port`.
    pub async fn start(target_port: u16) -> TcpFaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the TCP fault proxy on 127.0.0.1");
        let port = listener.local_addr().expect("a bound listener has an address").port();
        let shared = Arc::new(Shared {
            target: SocketAddr::from((Ipv4Addr::LOCALHOST, target_port)),
            plan: Mutex::new(Plan::default()),
            refusing: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            injected: Mutex::new(BTreeMap::new()),
            cut_generation: watch::Sender::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        TcpFaultProxy { port, shared, task }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replaces the rules; connections are counted from here (the next one is connection 1).
    pub fn arm(&self, rules: Vec<TcpRule>) {
        let mut plan = self.shared.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *plan = Plan { rules, armed_connections: 0 };
    }

    /// No more faults for new connections (live ones keep what they were given).
    pub fn disarm(&self) {
        self.arm(Vec::new());
    }

    /// Every new connection is closed as soon as it is accepted, until set back to false.
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Closes every live connection now (both sides).
    pub fn cut_all(&self) {
        self.shared.cut_generation.send_modify(|generation| *generation += 1);
        self.shared.count("tcp_cut_all");
    }

    /// Connections accepted since start.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Faults injected so far, by kind (`tcp_cut_mid_chunk`, `tcp_refused`, ...).
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        self.shared.injected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Live relays hold the Shared too; cut them so nothing outlives the proxy.
        self.shared.cut_generation.send_modify(|generation| *generation += 1);
    }
}

impl std::fmt::Debug for TcpFaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpFaultProxy").field("port", &self.port).field("target", &self.shared.target).finish_non_exhaustive()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        if shared.refusing.load(Ordering::SeqCst) {
            shared.count("tcp_refused");
            // A reset rather than a polite FIN: what a client sees from a port nobody serves.
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        let rules = {
            let mut plan = shared.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            plan.armed_connections += 1;
            let index = plan.armed_connections;
            plan.rules.iter().filter(|rule| rule.connection.is_none_or(|k| k == index)).copied().collect::<Vec<_>>()
        };
        tokio::spawn(relay(client, rules, shared.clone()));
    }
}

/// How the client-to-server half ended.
enum ClientSide {
    /// EOF or an error: close both sides normally.
    Closed,
    /// A cut: close both sides now, relaying nothing more.
    Cut,
    /// Blackholed: keep both sockets open, relay nothing, until the client goes away.
    Blackholed,
}

async fn relay(client: TcpStream, rules: Vec<TcpRule>, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let server = match TcpStream::connect(shared.target).await {
        Ok(server) => server,
        // The database is down: the client sees its connection closed, as through a real proxy.
        Err(_) => return,
    };
    let _ = server.set_nodelay(true);
    let mut cut = shared.cut_generation.subscribe();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let blackholed = Arc::new(AtomicBool::new(false));

    let client_to_server = {
        let (blackholed, shared) = (blackholed.clone(), shared.clone());
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            let mut chunk = 0u64;
            loop {
                let n = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => return ClientSide::Closed,
                    Ok(n) => n,
                };
                chunk += 1;
                let data = &buffer[..n];
                match rules.iter().find(|rule| rule.client_chunk == chunk).map(|rule| rule.fault) {
                    None => {}
                    Some(fault @ TcpFault::Delay(pause)) => {
                        shared.count(fault.kind());
                        tokio::time::sleep(pause).await;
                    }
                    Some(fault @ TcpFault::CutMidChunk) => {
                        shared.count(fault.kind());
                        let _ = server_write.write_all(&data[..n.div_ceil(2)]).await;
                        return ClientSide::Cut;
                    }
                    Some(fault @ TcpFault::CutAfterChunk) => {
                        shared.count(fault.kind());
                        let _ = server_write.write_all(data).await;
                        let _ = server_write.flush().await;
                        return ClientSide::Cut;
                    }
                    Some(fault @ TcpFault::Blackhole) => {
                        shared.count(fault.kind());
                        blackholed.store(true, Ordering::SeqCst);
                        // Swallow whatever the client still sends, until it gives up.
                        loop {
                            match client_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => return ClientSide::Blackholed,
                                Ok(_) => {}
                            }
                        }
                    }
                }
                if server_write.write_all(data).await.is_err() {
                    return ClientSide::Closed;
                }
            }
        }
    };
    let server_to_client = {
        let blackholed = blackholed.clone();
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let n = match server_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if blackholed.load(Ordering::SeqCst) {
                    continue;
                }
                if client_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
            // The server closed: pass the close on (unless blackholed, where nothing passes).
            if !blackholed.load(Ordering::SeqCst) {
                let _ = client_write.shutdown().await;
            } else {
                std::future::pending::<()>().await;
            }
        }
    };
    let cut_now = async move {
        let _ = cut.changed().await;
    };
    tokio::select! {
        _ = client_to_server => {}
        _ = server_to_client => {}
        _ = cut_now => {}
    }
    // Dropping the halves closes both sockets.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that answers every chunk with "ok:" + the chunk.
    async fn echo_server() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        log.lock().unwrap().push(buffer[..n].to_vec());
                        let mut reply = b"ok:".to_vec();
                        reply.extend_from_slice(&buffer[..n]);
                        if stream.write_all(&reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (port, received)
    }

    async fn exchange(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(message).await?;
        let mut buffer = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.map_err(|_| std::io::Error::other("timed out"))??;
        buffer.truncate(n);
        Ok(buffer)
    }

    #[tokio::test]
    async fn relays_untouched_without_rules() {
        let (port, _) = echo_server().await;
        let proxy = TcpFaultProxy::start(port).await;
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        assert_eq!(exchange(&mut stream, b"hello").await.unwrap(), b"ok:hello");
        assert_eq!(exchange(&mut stream, b"again").await.unwrap(), b"ok:again");
        assert_eq!(proxy.connections(), 1);
        assert!(proxy.injected().is_empty());
    }

    #[tokio::test]
    async fn cuts_hit_the_chosen_connection_and_chunk() {
        let (port, received) = echo_server().await;
        let proxy = TcpFaultProxy::start(port).await;
        proxy.arm(vec![
            TcpRule { connection: Some(1), client_chunk: 2, fault: TcpFault::CutAfterChunk },
            TcpRule { connection: Some(2), client_chunk: 1, fault: TcpFault::CutMidChunk },
        ]);
        let mut first = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        assert_eq!(exchange(&mut first, b"one").await.unwrap(), b"ok:one");
        // The second chunk reaches the server, but its answer never comes back.
        assert_eq!(exchange(&mut first, b"two").await.unwrap(), b"");
        let mut second = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        assert_eq!(exchange(&mut second, b"abcdef").await.unwrap(), b"");
        let mut third = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        assert_eq!(exchange(&mut third, b"three").await.unwrap(), b"ok:three");
        let seen = received.lock().unwrap().clone();
        assert!(seen.contains(&b"two".to_vec()), "{seen:?}");
        assert!(seen.contains(&b"abc".to_vec()), "half of the cut chunk arrived: {seen:?}");
        assert!(!seen.contains(&b"abcdef".to_vec()));
        assert_eq!(proxy.injected().get("tcp_cut_after_chunk"), Some(&1));
        assert_eq!(proxy.injected().get("tcp_cut_mid_chunk"), Some(&1));
    }

    #[tokio::test]
    async fn a_blackhole_answers_nothing_and_keeps_the_socket_open() {
        let (port, _) = echo_server().await;
        let proxy = TcpFaultProxy::start(port).await;
        proxy.arm(vec![TcpRule { connection: None, client_chunk: 1, fault: TcpFault::Blackhole }]);
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        stream.write_all(b"anyone?").await.unwrap();
        let mut buffer = [0u8; 16];
        let waited = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;
        assert!(waited.is_err(), "a blackhole neither answers nor closes: {waited:?}");
    }

    #[tokio::test]
    async fn refusing_and_cut_all_close_connections() {
        let (port, _) = echo_server().await;
        let proxy = TcpFaultProxy::start(port).await;
        let mut live = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        assert_eq!(exchange(&mut live, b"x").await.unwrap(), b"ok:x");
        proxy.cut_all();
        let after = exchange(&mut live, b"y").await;
        assert!(matches!(after.as_deref(), Ok(b"") | Err(_)), "{after:?}");
        proxy.set_refusing(true);
        let mut refused = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        let answer = exchange(&mut refused, b"z").await;
        assert!(matches!(answer.as_deref(), Ok(b"") | Err(_)), "{answer:?}");
        proxy.set_refusing(false);
        let mut back = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        assert_eq!(exchange(&mut back, b"w").await.unwrap(), b"ok:w");
        assert_eq!(proxy.injected().get("tcp_refused"), Some(&1));
    }
}
