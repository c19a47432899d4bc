//! A paced flood of DNS queries for names made from a template, whose answers are counted
//! as they come back (one socket, a reader thread): the sender's side of "received + lost
//! = sent" when the answers are part of what the agent must see.

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The DNS query for `name`, type A, with `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend(crate::wire_name(name));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

/// The `i`th name: `{i}` in `template` becomes `i`, `{k}` becomes `i % distinct`.
pub fn flood_name(template: &str, i: u64, distinct: u64) -> String {
    template
        .replace("{i}", &i.to_string())
        .replace("{k}", &(i % distinct.max(1)).to_string())
}

/// Sends `n` A queries at `rate` per second to `server` and counts the answers (and the
/// NXDOMAIN among them) until 2 s after the last; JSON with sent, failed, answers,
/// nxdomain and the sending time in ns.
pub fn query_flood(
    server: SocketAddr,
    template: &str,
    n: u64,
    rate: u64,
    distinct: u64,
) -> anyhow::Result<serde_json::Value> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    // A receive buffer deep enough that no answer is dropped at the socket after the
    // kernel's hooks saw it (root may exceed rmem_max).
    let size: libc::c_int = 32 << 20;
    // SAFETY: a valid socket fd and a properly sized int option.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let (answers, nx, done) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let reader = {
        let (s, answers, nx, done) = (s.try_clone()?, answers.clone(), nx.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut quiet_since = None::<Instant>;
            loop {
                match s.recv(&mut buf) {
                    Ok(m) if m >= 12 => {
                        answers.fetch_add(1, Ordering::Relaxed);
                        if buf[3] & 0x0f == 3 {
                            nx.fetch_add(1, Ordering::Relaxed);
                        }
                        quiet_since = None;
                    }
                    Ok(_) => {}
                    Err(_) if done.load(Ordering::Relaxed) => {
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_secs(2) {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    let start = Instant::now();
    let (mut sent, mut failed) = (0u64, 0u64);
    while sent + failed < n {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(n);
        while sent + failed < due {
            let i = sent + failed;
            match s.send_to(&query(i as u16, &flood_name(template, i, distinct)), server) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
        if sent + failed < n {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let ns = start.elapsed().as_nanos() as u64;
    done.store(true, Ordering::Relaxed);
    let _ = reader.join();
    Ok(serde_json::json!({
        "sent": sent, "failed": failed, "ns": ns,
        "answers": answers.load(Ordering::Relaxed),
        "nxdomain": nx.load(Ordering::Relaxed),
    }))
}
