//! The kernel object built by `build.rs` (the `sensor-ebpf` crate), embedded in the agent,
//! and the check that it holds exactly the programs and maps of the contract in
//! `sensor_common` — a unit test, so a rename on one side fails without root.

/// The eBPF object file, as `build.rs` produced it.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mxsentry"));

#[cfg(test)]
mod contract {
    use std::collections::BTreeMap;

    use aya_obj::{
        Object, ProgramSection,
        programs::{CgroupSkbAttachType, CgroupSockAddrAttachType},
    };
    use sensor_common::{Hook, Program, maps::MAPS};

    use super::EBPF_OBJECT;

    fn object() -> Object {
        Object::parse(EBPF_OBJECT).expect("the embedded kernel object parses")
    }

    /// The hook a program's ELF section attaches it to, if it is a cgroup hook we use.
    fn hook(section: &ProgramSection) -> Option<Hook> {
        use CgroupSockAddrAttachType as A;
        Some(match section {
            ProgramSection::CgroupSkb {
                attach_type: Some(CgroupSkbAttachType::Egress),
            } => Hook::SkbEgress,
            ProgramSection::CgroupSkb {
                attach_type: Some(CgroupSkbAttachType::Ingress),
            } => Hook::SkbIngress,
            ProgramSection::CgroupSockAddr { attach_type } => match attach_type {
                A::Connect4 => Hook::Connect4,
                A::Connect6 => Hook::Connect6,
                A::Bind4 => Hook::Bind4,
                A::Bind6 => Hook::Bind6,
                A::UDPSendMsg4 => Hook::Sendmsg4,
                A::UDPSendMsg6 => Hook::Sendmsg6,
                _ => return None,
            },
            _ => return None,
        })
    }

    #[test]
    fn programs_are_exactly_the_contracts() {
        let obj = object();
        let found: BTreeMap<&str, Option<Hook>> = obj
            .programs
            .iter()
            .map(|(name, p)| (name.as_str(), hook(&p.section)))
            .collect();
        let want: BTreeMap<&str, Option<Hook>> = Program::builds()
            .map(|(name, p)| (name, Some(p.hook())))
            .collect();
        assert_eq!(
            found, want,
            "kernel object programs (left) differ from sensor_common::Program (right)"
        );
    }

    #[test]
    fn maps_are_exactly_the_contracts() {
        let obj = object();
        // Sections of globals (.rodata, .bss, .data) are maps too, but not shared ones.
        let mut found: Vec<_> = obj
            .maps
            .iter()
            .filter(|(name, _)| !name.starts_with('.'))
            .map(|(name, m)| {
                let pinned = m.pinning() == aya_obj::maps::PinningType::ByName;
                (
                    name.clone(),
                    m.map_type(),
                    m.key_size(),
                    m.value_size(),
                    m.max_entries(),
                    m.map_flags(),
                    pinned,
                )
            })
            .collect();
        found.sort();
        let mut want: Vec<_> = MAPS
            .iter()
            .map(|m| {
                (
                    m.name.to_string(),
                    m.kind.bpf_type(),
                    m.key_size,
                    m.value_size,
                    m.max_entries,
                    m.flags,
                    m.pinned,
                )
            })
            .collect();
        want.sort();
        assert_eq!(
            found, want,
            "kernel object maps (left) differ from sensor_common::maps::MAPS (right): \
             (name, type, key size, value size, max entries, flags, pinned)"
        );
    }
}
