//! The unresolved-lookalike memory under floods, restarts and faulty disks.

use std::time::{Duration, Instant};

use super::*;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxsentry-pending-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn survives_a_restart_and_is_bounded() {
    let d = dir("restart");
    let (mut p, warn) = Pending::load(&d, 2);
    assert!(warn.is_none());
    p.remember("army.ml", "army.mil", "suffix-typo", true);
    p.remember("navy.ml", "navy.mil", "suffix-typo", false);
    p.save_now().unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join(FILE)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (mut again, _) = Pending::load(&d, 2);
    assert_eq!(again.len(), 2);
    let gone = again.resolved("army.ml");
    assert_eq!(
        gone.map(|e| (e.target, e.attempted)),
        Some(("army.mil".into(), true))
    );
    drop(again); // saves what changed
    let (third, _) = Pending::load(&d, 2);
    assert_eq!(third.len(), 1);
    drop(third);
    std::fs::write(d.join(FILE), b"not json").unwrap();
    let (mut fresh, warn) = Pending::load(&d, 2);
    assert!(fresh.is_empty());
    assert!(warn.unwrap().contains("not valid"));
    assert!(fresh.take_load_problem().unwrap().contains("moved to"));
    assert!(
        std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".bad-"))
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_flood_of_queried_names_does_not_push_out_a_delivery_attempt() {
    let mut p = Pending::in_memory(1000);
    p.set_bounds(1000, 1000);
    p.remember("army.ml", "army.mil", "suffix-typo", true);
    for i in 0..1200 {
        p.remember(
            &format!("armymil.f{i}.ck"),
            "army.mil",
            "dot-dropped",
            false,
        );
        p.remember(
            &format!("navymil.f{i}.ck"),
            "navy.mil",
            "dot-dropped",
            false,
        );
    }
    assert_eq!(p.len(), 1000);
    assert!(p.contains("army.ml"), "the real one was evicted");
    // The least recently seen queried names went first.
    assert!(!p.contains("armymil.f0.ck") && p.contains("armymil.f1199.ck"));
    // Two targets flooding: the total bound forgets the least recently seen.
    let f = p.take_forgotten();
    assert_eq!(f.values().map(|f| f.count).sum::<u64>(), 1401);
    assert!(f.values().all(|f| f.examples.len() <= EXAMPLES));
}

#[test]
fn one_target_cannot_take_the_others_places() {
    let mut p = Pending::in_memory(100);
    p.set_bounds(100, 10);
    p.remember("navy.ml", "navy.mil", "suffix-typo", false);
    for i in 0..50 {
        p.remember(
            &format!("armymil.f{i}.ck"),
            "army.mil",
            "dot-dropped",
            false,
        );
    }
    assert_eq!(p.len(), 11);
    assert!(p.contains("navy.ml"));
    assert_eq!(p.take_forgotten()["pending_per_target"].count, 40);
}

#[test]
fn saves_are_batched_and_atomic() {
    let d = dir("batched");
    let (mut p, _) = Pending::load(&d, 100_000);
    let t0 = Instant::now();
    let mut saves = 0;
    // 20,000 NXDOMAIN answers a second for 10 s.
    for i in 0..200_000u64 {
        p.remember(
            &format!("armymil.f{}.ck", i % 5000),
            "army.mil",
            "dot-dropped",
            false,
        );
        let now = t0 + Duration::from_micros(i * 50);
        if i % 20_000 == 0
            && let Some(r) = p.flush(now)
        {
            r.unwrap();
            saves += 1;
        }
    }
    assert!(saves <= 3, "{saves} saves in 10 s");
    assert!(p.flush(t0 + Duration::from_secs(11)).is_some());
    let saved: BTreeMap<String, PendingEntry> =
        serde_json::from_slice(&std::fs::read(d.join(FILE)).unwrap()).unwrap();
    assert_eq!(saved.len(), 5000);
    assert!(!d.join(format!("{FILE}.tmp")).exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_failed_save_keeps_the_old_file_and_is_retried() {
    let d = dir("failing");
    let (mut p, _) = Pending::load(&d, 100);
    p.remember("army.ml", "army.mil", "suffix-typo", true);
    p.save_now().unwrap();
    // The temporary file's name taken by a directory: the write fails, as on a full disk.
    std::fs::create_dir(d.join(format!("{FILE}.tmp"))).unwrap();
    std::fs::create_dir(d.join(format!("{FILE}.tmp/x"))).unwrap();
    p.remember("navy.ml", "navy.mil", "suffix-typo", true);
    let t0 = Instant::now();
    let err = p.flush(t0).unwrap().unwrap_err();
    assert!(err.contains(FILE), "{err}");
    let kept: BTreeMap<String, PendingEntry> =
        serde_json::from_slice(&std::fs::read(d.join(FILE)).unwrap()).unwrap();
    assert_eq!(kept.len(), 1, "the old file is intact");
    std::fs::remove_dir_all(d.join(format!("{FILE}.tmp"))).unwrap();
    assert_eq!(p.flush(t0 + SAVE_EVERY), Some(Ok(())));
    std::fs::remove_dir_all(&d).unwrap();
}
