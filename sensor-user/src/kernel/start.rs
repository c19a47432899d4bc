//! The steps of a start on a locked pin directory (listed in loader.rs): plan each map,
//! build the new map directory when one must be replaced, load, fill, switch the links,
//! and finish the migration.

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::Ebpf;
use sensor_common::{
    Program as Prog,
    maps::{LAYOUT_VERSION, MAPS, MapSpec},
};

use super::{
    KernelError,
    bpf::{self, BPF_ANY, BPF_NOEXIST, RawMap},
    error::bpf_err,
    layout::{self, Conversion, MapAction, Marker},
    loader::{self, CallerReads, StartReport, Target, pin_err},
    migrate::{self, CONVERTERS, Carried, Ctx},
    pins::{self, links_dir, maps_dir, programs_dir, staging_dir},
    port_builds::ConnectBuilds,
    upgrade::{self, Journal, OldLink, ProgState},
};

/// One map of the contract and what to do with it.
struct Planned {
    spec: &'static MapSpec,
    action: MapAction,
}

/// Every pinned map's fate, and the layouts on both sides.
struct Plan {
    /// The record found, if any.
    recorded: Option<Marker>,
    /// This build's layout.
    want: Marker,
    maps: Vec<Planned>,
}

impl Plan {
    fn migrating(&self) -> bool {
        self.maps
            .iter()
            .any(|p| matches!(p.action, MapAction::Recreate { .. }))
    }

    fn recreated(&self) -> impl Iterator<Item = (&'static MapSpec, &Conversion, &str)> {
        self.maps.iter().filter_map(|p| match &p.action {
            MapAction::Recreate { conversion, reason } => {
                Some((p.spec, conversion, reason.as_str()))
            }
            _ => None,
        })
    }
}

/// Checks every pinned map in `maps` against the contract and the layout record.
fn plan(maps: &Path) -> Result<Plan, KernelError> {
    let recorded = Marker::read(maps)?;
    let have = recorded.clone().unwrap_or_else(Marker::unrecorded);
    let want = Marker::this_build(CONVERTERS);
    let specs: Vec<MapSpec> = MAPS.iter().filter(|m| m.pinned).copied().collect();
    let found = pins::pinned_maps(maps, &specs)?;
    let mut planned = Vec::new();
    for (spec, (path, info)) in MAPS.iter().filter(|m| m.pinned).zip(found) {
        let action = layout::plan_map(spec, info.as_ref(), &have, &want, CONVERTERS).map_err(
            |difference| KernelError::MapMismatch {
                name: spec.name.to_string(),
                path,
                difference,
            },
        )?;
        planned.push(Planned { spec, action });
    }
    Ok(Plan {
        recorded,
        want,
        maps: planned,
    })
}

/// Runs a start on the locked pin directory: the loaded object, what was done, and how
/// the connect programs read the caller.
pub(super) fn start(
    t: &Target<'_>,
) -> Result<(Ebpf, ConnectBuilds, StartReport, CallerReads), KernelError> {
    let pin_dir = &t.opts.pin_dir;
    let (maps, links, staging) = (maps_dir(pin_dir), links_dir(pin_dir), staging_dir(pin_dir));
    for d in [&maps, &links] {
        std::fs::create_dir_all(d).map_err(|e| pin_err(d, e))?;
    }
    // A migration that died half-way left this; we hold the lock, so it is dead.
    pins::remove_dir_pins(&staging)?;
    let plan = plan(&maps)?;
    let old = Prog::ALL
        .iter()
        .map(|p| {
            let old = upgrade::inspect(&links, &programs_dir(pin_dir), *p, t.cgroup_id)?;
            Ok((*p, old))
        })
        .collect::<Result<Vec<_>, KernelError>>()?;
    let load_dir = if plan.migrating() {
        let which: Vec<String> = plan
            .recreated()
            .map(|(spec, _, reason)| format!("{} ({reason})", spec.name))
            .collect();
        log::info!("migrating maps: {}", which.join(", "));
        prepare_staging(&maps, &staging, &plan)?;
        staging.clone()
    } else {
        maps.clone()
    };
    let (mut ebpf, reads) = loader::open_object(t.opts, &load_dir)?;
    // Held from here, before anything is attached (so a failure needs no undo) and
    // before the unloads below: a reload may switch to either build.
    let builds = loader::connect_builds(&mut ebpf, pin_dir)?;
    let mut carried = fill(&maps, &load_dir, &plan)?;
    let mut journal = Journal::default();
    let programs = match link_all(&mut ebpf, t, &load_dir, old, &mut journal) {
        Ok(p) => p,
        Err(e) => {
            journal.undo();
            return Err(e);
        }
    };
    let finished = if plan.migrating() {
        finish_migration(&maps, &staging, &plan, &mut carried)
    } else if plan.recorded.as_ref() != Some(&plan.want) {
        plan.want.write(&maps)
    } else {
        Ok(())
    };
    if let Err(e) = finished {
        journal.undo();
        return Err(e);
    }
    for (prog, state) in &programs {
        // This build's copy of a kept program is not needed; failing to unload it early
        // only costs memory until the agent exits.
        if *state == ProgState::Adopted
            && let Err(e) = loader::unload(&mut ebpf, prog.build_name(t.opts.ports))
        {
            log::warn!("{e}");
        }
    }
    let connect = programs.iter().find(|(p, _)| *p == Prog::Connect4);
    let reads = match connect {
        Some((_, ProgState::Adopted)) => CallerReads::Adopted,
        _ => reads,
    };
    let report = StartReport {
        layout: LAYOUT_VERSION,
        programs: programs.into_iter().map(|(p, s)| (p.name(), s)).collect(),
        migrated: carried,
    };
    Ok((ebpf, builds, report, reads))
}

/// Makes `staging` a map directory holding every map that is kept (pinned again; the
/// same map objects), so that loading against it creates only the replaced ones.
fn prepare_staging(maps: &Path, staging: &Path, plan: &Plan) -> Result<(), KernelError> {
    std::fs::create_dir_all(staging).map_err(|e| pin_err(staging, e))?;
    for p in plan.maps.iter().filter(|p| p.action == MapAction::Adopt) {
        let (from, to) = (maps.join(p.spec.name), staging.join(p.spec.name));
        let fd = bpf::obj_get(&from).map_err(|e| pin_err(&from, e))?;
        bpf::obj_pin(fd.as_fd(), &to).map_err(|e| pin_err(&to, e))?;
    }
    Ok(())
}

/// Opens the old and new map `name` (in `maps` and `load_dir`).
fn pair(maps: &Path, load_dir: &Path, name: &str) -> Result<(RawMap, RawMap), KernelError> {
    let open = |dir: &Path| {
        let path: PathBuf = dir.join(name);
        RawMap::open(&path).map_err(bpf_err(format!("opening {}", path.display())))
    };
    Ok((open(maps)?, open(load_dir)?))
}

/// Fills each new map from the old one it replaces.
fn fill(maps: &Path, load_dir: &Path, plan: &Plan) -> Result<Vec<Carried>, KernelError> {
    let ctx = Ctx::now();
    let mut carried = Vec::new();
    for (spec, conversion, reason) in plan.recreated() {
        let (copied, dropped) = if matches!(conversion, Conversion::Discard) {
            (0, 0)
        } else {
            let (old, new) = pair(maps, load_dir, spec.name)?;
            migrate::carry(&old, &new, conversion, &ctx, BPF_ANY)
                .map_err(bpf_err(format!("copying {}", spec.name)))?
        };
        carried.push(Carried {
            map: spec.name,
            action: migrate::action_name(conversion),
            reason: reason.to_string(),
            copied,
            dropped,
        });
    }
    Ok(carried)
}

/// Adopts, switches or attaches each program's link.
fn link_all(
    ebpf: &mut Ebpf,
    t: &Target<'_>,
    load_dir: &Path,
    old: Vec<(Prog, Option<OldLink>)>,
    journal: &mut Journal,
) -> Result<Vec<(Prog, ProgState)>, KernelError> {
    let pinned = upgrade::pinned_ids(load_dir)?;
    let links = links_dir(&t.opts.pin_dir);
    let mut states = Vec::new();
    for (prog, old) in old {
        let name = prog.build_name(t.opts.ports);
        let state = match old {
            None => {
                loader::attach(ebpf, prog, name, &t.cgroup, &links, journal)?;
                loader::pin_loaded(ebpf, prog, name, &t.opts.pin_dir)?;
                ProgState::Attached
            }
            Some(old) => {
                let new = loader::loaded_info(ebpf, name)?;
                if upgrade::can_adopt(&old.prog, &new, &pinned) {
                    // Pinned again for pins an older build left without it.
                    pins::pin_program(&t.opts.pin_dir, prog.name(), old.prog_fd.as_fd())?;
                    ProgState::Adopted
                } else {
                    log::info!(
                        "{}: switching from program {} (tag {}) to {} (tag {})",
                        prog.name(),
                        old.prog.id,
                        old.prog.tag_hex(),
                        new.id,
                        new.tag_hex()
                    );
                    loader::switch(ebpf, name, old, journal)?;
                    loader::pin_loaded(ebpf, prog, name, &t.opts.pin_dir)?;
                    ProgState::Upgraded
                }
            }
        };
        states.push((prog, state));
    }
    Ok(states)
}

/// After the switch: copies what the old programs wrote since the fill, counts the
/// records left in replaced rings, records the layout and swaps the new map directory
/// in; then removes the old maps' pins (the maps go with the old programs).
fn finish_migration(
    maps: &Path,
    staging: &Path,
    plan: &Plan,
    carried: &mut [Carried],
) -> Result<(), KernelError> {
    let ctx = Ctx::now();
    for ((spec, conversion, _), c) in plan.recreated().zip(carried.iter_mut()) {
        if matches!(conversion, Conversion::Discard) {
            c.dropped = migrate::unread_records(&maps.join(spec.name));
            continue;
        }
        let (old, new) = pair(maps, staging, spec.name)?;
        let (late, _) = migrate::carry(&old, &new, conversion, &ctx, BPF_NOEXIST)
            .map_err(bpf_err(format!("copying {} again", spec.name)))?;
        c.copied += late;
    }
    plan.want.write(staging)?;
    pins::exchange_dirs(maps, staging)?;
    if let Err(e) = pins::remove_dir_pins(staging) {
        log::warn!("removing the replaced maps' pins: {e}");
    }
    Ok(())
}
