//! Time: wall-clock stamps for the event log, and kernel monotonic time for latencies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-23T19:17:08.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The wall-clock time of kernel stamp `ts_ns` (`bpf_ktime_get_ns`, CLOCK_MONOTONIC):
/// now, less how long ago the stamp was. The offset between the clocks is read at each
/// call, so a clock step (NTP) is followed; a stamp from the future is now.
pub fn kernel_wall_time(ts_ns: u64) -> SystemTime {
    let ago = monotonic_ns().saturating_sub(ts_ns);
    SystemTime::now()
        .checked_sub(Duration::from_nanos(ago))
        .unwrap_or(UNIX_EPOCH)
}

/// Seconds from kernel time `ts_ns` to now (0 when the stamp is in the future or absent).
pub fn since_kernel(ts_ns: u64) -> f64 {
    if ts_ns == 0 {
        return 0.0;
    }
    monotonic_ns().saturating_sub(ts_ns) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_461_428_123);
        assert_eq!(rfc3339(t), "2026-11-23T19:17:08.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }

    #[test]
    fn kernel_stamps_become_wall_time() {
        let two_s_ago = monotonic_ns() - 2_000_000_000;
        let wall = kernel_wall_time(two_s_ago);
        let ago = SystemTime::now().duration_since(wall).unwrap();
        assert!(
            ago >= Duration::from_millis(1990) && ago < Duration::from_millis(2500),
            "{ago:?}"
        );
        let future = kernel_wall_time(monotonic_ns() + 10_000_000_000);
        assert!(SystemTime::now().duration_since(future).is_ok());
    }

    #[test]
    fn monotonic_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
        assert!(since_kernel(a) >= 0.0);
        assert_eq!(since_kernel(0), 0.0);
    }
}
