//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! A few GET routes on loopback or a pod IP need no framework: one request per
//! connection, bounded in size and time, and a bounded number of connections.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::{AbortHandle, JoinSet},
};

use super::metrics::Metrics;

/// What the endpoint serves.
#[derive(Clone)]
pub struct MetricsServer {
    /// The metrics to render (kernel-owned counters are collected at render time).
    pub metrics: Metrics,
    /// Path of the metrics page.
    pub path: String,
    /// Set once programs are attached.
    pub ready: Arc<AtomicBool>,
}

/// Binds `addr`; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics endpoint {addr}: {e}")))
}

/// Most connections served at once: past it the oldest is closed to make room, so idle or
/// slow clients (or a flood of them) never use up the descriptors and `/healthz` (the
/// liveness probe) is always answered.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request head (a slow or idle one is closed).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a whole exchange may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections being served, oldest first.
#[derive(Default)]
struct Connections {
    tasks: JoinSet<()>,
    order: VecDeque<AbortHandle>,
}

impl Connections {
    /// Forgets the finished ones.
    fn reap(&mut self) {
        while let Some(done) = self.tasks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => e.id(),
            };
            self.order.retain(|h| h.id() != id);
        }
    }

    /// Closes the oldest connection; false when there is none.
    fn evict_oldest(&mut self, ep: &MetricsServer) -> bool {
        match self.order.pop_front() {
            Some(h) => {
                h.abort();
                ep.metrics.http_evicted.inc();
                true
            }
            None => false,
        }
    }
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: TcpListener, ep: MetricsServer) {
    let mut conns = Connections::default();
    loop {
        conns.reap();
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                // Out of descriptors: free one of ours rather than wait.
                log::warn!("metrics endpoint: {e}; closing the oldest connection");
                if !conns.evict_oldest(&ep) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            Err(e) => {
                log::warn!("metrics endpoint accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while conns.order.len() >= MAX_CONNECTIONS {
            conns.reap();
            if conns.order.len() < MAX_CONNECTIONS {
                break;
            }
            // Let the connections whose request has come answer it before one is closed:
            // a probe accepted before its request arrived must not be closed by the flood
            // accepted behind it (seen once in CI: /healthz reset at 1,100 idle clients).
            tokio::task::yield_now().await;
            conns.reap();
            if conns.order.len() < MAX_CONNECTIONS || !conns.evict_oldest(&ep) {
                break;
            }
        }
        // A probe's request is usually there by the time it is accepted: a health check
        // is answered on the spot, before any connection could be closed to make room.
        let mut head = vec![0u8; 1024];
        let n = stream.try_read(&mut head).unwrap_or(0);
        head.truncate(n);
        if complete(&head) && probe(&stream, &head, &ep) {
            continue;
        }
        let ep = ep.clone();
        let h = conns.tasks.spawn(async move {
            let exchange = handle(stream, head, &ep);
            if let Err(e) = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                log::debug!("metrics request timed out: {e}");
            }
        });
        conns.order.push_back(h);
    }
}

fn complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n")
}

/// Answers `/healthz` or `/readyz` at once, without waiting (the answer fits the socket's
/// buffer); false for anything else, which is served as usual.
fn probe(s: &TcpStream, head: &[u8], ep: &MetricsServer) -> bool {
    let (method, path) = request_line(head);
    if method != "GET" || !matches!(path.as_str(), "/healthz" | "/readyz") {
        return false;
    }
    let (status, ctype, body) = route(&method, &path, ep);
    let _ = s.try_write(response(status, ctype, &body).as_bytes());
    true
}

/// Method and path (without the query) of a request head.
fn request_line(head: &[u8]) -> (String, String) {
    let head = String::from_utf8_lossy(head);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    (
        method.to_string(),
        target.split('?').next().unwrap_or("").to_string(),
    )
}

fn response(status: &str, ctype: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Reads the rest of the request head (to the blank line, at most 16 KiB).
async fn read_head(s: &mut TcpStream, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut chunk = [0u8; 1024];
    while !complete(&buf) {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

async fn handle(mut s: TcpStream, head: Vec<u8>, ep: &MetricsServer) -> std::io::Result<()> {
    let Ok(buf) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut s, head)).await else {
        return Ok(());
    };
    let (method, path) = request_line(&buf?);
    let (status, ctype, body) = route(&method, &path, ep);
    s.write_all(response(status, ctype, &body).as_bytes())
        .await?;
    s.shutdown().await
}

/// Status, content type and body for a request.
fn route(method: &str, path: &str, ep: &MetricsServer) -> (&'static str, &'static str, String) {
    match (method, path) {
        ("GET", p) if p == ep.path => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            ep.metrics.render(),
        ),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/readyz") if ep.ready.load(Ordering::Relaxed) => {
            ("200 OK", "text/plain", "ready\n".to_string())
        }
        ("GET", "/readyz") => (
            "503 Service Unavailable",
            "text/plain",
            "programs not attached\n".to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_is_answered_past_hundreds_of_idle_connections() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new("test").unwrap();
        let ep = MetricsServer {
            metrics: metrics.clone(),
            path: "/metrics".into(),
            ready: Arc::new(AtomicBool::new(true)),
        };
        let server = tokio::spawn(serve(listener, ep));
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let start = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        tokio::time::timeout(Duration::from_secs(1), s.read_to_string(&mut resp))
            .await
            .expect("answered within a second")
            .unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(metrics.http_evicted.get() >= (300 - MAX_CONNECTIONS) as u64);
        server.abort();
    }
}
