//! The Alertmanager the agent pushes to, and just enough HTTP/1.1 to POST JSON to it: one
//! request per connection.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// Where to push: `http://host:port[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alertmanager {
    host: String,
    port: u16,
    prefix: String,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Alertmanager answered with an error status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The answer was not HTTP.
    #[error("not an HTTP response")]
    BadResponse,
}

impl Alertmanager {
    /// Parses a plain-HTTP base URL; `None` when it is not one.
    pub fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("http://")?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            match after.strip_prefix(':') {
                Some(p) => (h, p.parse().ok()?),
                None if after.is_empty() => (h, 80),
                None => return None,
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return None;
        }
        let host = host.to_string();
        Some(Self {
            host,
            port,
            prefix: prefix.to_string(),
        })
    }

    /// POSTs `body` (JSON) to `path` under the prefix; Ok when the status is 2xx.
    pub async fn post_json(
        &self,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(), PushError> {
        tokio::time::timeout(timeout, self.post_inner(path, body))
            .await
            .map_err(|_| PushError::Timeout)?
    }

    async fn post_inner(&self, path: &str, body: &[u8]) -> Result<(), PushError> {
        let mut s = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let head = format!(
            "POST {}{} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.prefix,
            path,
            self.host,
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        // The status line is all we need.
        while !buf.contains(&b'\n') && buf.len() < 4096 {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let status: u16 = line
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|c| c.parse().ok())
            .ok_or(PushError::BadResponse)?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(PushError::Status(status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Alertmanager::parse("http://127.0.0.1:9093").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("127.0.0.1", 9093, "")
        );
        let e = Alertmanager::parse("http://am.monitoring:9093/alertmanager/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("am.monitoring", 9093, "/alertmanager")
        );
        let e = Alertmanager::parse("http://[::1]:9093").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9093));
        assert_eq!(Alertmanager::parse("http://am").unwrap().port, 80);
        assert!(Alertmanager::parse("https://am:9093").is_none());
        assert!(Alertmanager::parse("am:9093").is_none());
        assert!(Alertmanager::parse("http://:9093").is_none());
        assert!(Alertmanager::parse("http://am:port").is_none());
    }
}
