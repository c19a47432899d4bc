//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! A few GET routes on loopback or a pod IP need no framework: one request per
//! connection, bounded in size and time.

use std::{
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

/// Serves connections until the task is dropped.
pub async fn serve(listener: TcpListener, ep: MetricsServer) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("metrics endpoint accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(Duration::from_secs(10), handle(stream, &ep)).await
            {
                log::debug!("metrics request timed out: {e}");
            }
        });
    }
}

async fn handle(mut s: TcpStream, ep: &MetricsServer) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
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
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}
