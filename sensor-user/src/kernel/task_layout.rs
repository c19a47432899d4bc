//! Finds the `task_struct` fields the connect programs read directly (see
//! `sensor_common::TaskLayout`) in the running kernel's BTF.

use std::path::Path;

use sensor_common::TaskLayout;

/// The running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why the layout could not be read; the connect programs then use helper calls.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The BTF file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not BTF, or cut short.
    #[error("not a BTF blob this agent can read: {0}")]
    Format(&'static str),
    /// A struct or member is missing, or not of the expected shape.
    #[error("{0}")]
    Shape(String),
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One type record: its kind, name, `size_or_type` word and trailing data.
struct Type<'a> {
    kind: u32,
    name: &'a str,
    kind_flag: bool,
    vlen: usize,
    size_or_type: u32,
    extra: &'a [u8],
}

/// A parsed BTF blob (types numbered from 1, as in the format).
struct Btf<'a> {
    types: Vec<Type<'a>>,
    strings: &'a [u8],
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// Bytes after a type record's 12-byte header, by kind.
fn extra_len(kind: u32, vlen: usize) -> Result<usize, LayoutError> {
    Ok(match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
        KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
        0..=19 => 0,
        _ => return Err(LayoutError::Format("unknown type kind")),
    })
}

const SHORT: LayoutError = LayoutError::Format("cut short");

impl<'a> Btf<'a> {
    fn parse(b: &'a [u8]) -> Result<Self, LayoutError> {
        if b.get(0..2) != Some(&0xeb9f_u16.to_ne_bytes()[..]) {
            return Err(LayoutError::Format("bad magic (or the other byte order)"));
        }
        let word = |off| u32_at(b, off).map(|v| v as usize);
        let (Some(hdr), Some(type_off), Some(type_len), Some(str_off), Some(str_len)) =
            (word(4), word(8), word(12), word(16), word(20))
        else {
            return Err(SHORT);
        };
        let section = |off: usize, len: usize| {
            let start = hdr.checked_add(off)?;
            b.get(start..start.checked_add(len)?)
        };
        let (Some(types), Some(strings)) = (section(type_off, type_len), section(str_off, str_len))
        else {
            return Err(SHORT);
        };
        let mut btf = Self {
            types: Vec::new(),
            strings,
        };
        let mut at = 0;
        while at < types.len() {
            let (Some(name_off), Some(info), Some(size_or_type)) = (
                u32_at(types, at),
                u32_at(types, at + 4),
                u32_at(types, at + 8),
            ) else {
                return Err(SHORT);
            };
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let start = at + 12;
            let end = start + extra_len(kind, vlen)?;
            let extra = types.get(start..end).ok_or(SHORT)?;
            let name = btf.name(name_off)?;
            btf.types.push(Type {
                kind,
                name,
                kind_flag: info >> 31 == 1,
                vlen,
                size_or_type,
                extra,
            });
            at = end;
        }
        Ok(btf)
    }

    /// The string at `off` of the string section.
    fn name(&self, off: u32) -> Result<&'a str, LayoutError> {
        let rest = self
            .strings
            .get(off as usize..)
            .ok_or(LayoutError::Format("name outside the string section"))?;
        let end = rest.iter().position(|c| *c == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).map_err(|_| LayoutError::Format("name not UTF-8"))
    }

    fn get(&self, id: u32) -> Option<&Type<'a>> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// The id of the struct named `name` that has members (not a forward declaration).
    fn struct_named(&self, name: &str) -> Result<u32, LayoutError> {
        self.types
            .iter()
            .position(|t| t.kind == KIND_STRUCT && t.name == name && t.vlen > 0)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| LayoutError::Shape(format!("no struct {name}")))
    }

    /// `id` with typedefs and qualifiers looked through.
    fn resolve(&self, mut id: u32) -> Option<(u32, &Type<'a>)> {
        // A bound, so a cycle in a hostile blob cannot loop forever.
        for _ in 0..32 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Some((id, t)),
            }
        }
        None
    }

    /// Bit offset and type id of member `name` of struct/union `id`, looking inside
    /// anonymous struct and union members as C does.
    fn member(&self, id: u32, name: &str, depth: u32) -> Option<(u64, u32)> {
        let t = self.get(id)?;
        if depth > 8 || !matches!(t.kind, KIND_STRUCT | KIND_UNION) {
            return None;
        }
        for m in t.extra.chunks_exact(12) {
            let (name_off, ty, off) = (u32_at(m, 0)?, u32_at(m, 4)?, u32_at(m, 8)?);
            // With the kind flag, the top 8 bits are a bitfield's size.
            let bits = u64::from(if t.kind_flag { off & 0x00ff_ffff } else { off });
            let member = self.name(name_off).ok()?;
            if member == name {
                return Some((bits, ty));
            }
            if member.is_empty() {
                let (inner, _) = self.resolve(ty)?;
                if let Some((b, found)) = self.member(inner, name, depth + 1) {
                    return Some((bits + b, found));
                }
            }
        }
        None
    }
}

/// What a field must be for the programs' loads to be right.
enum Want {
    /// An integer of this many bytes.
    Int(u32),
    /// `char[16]`.
    Comm,
    /// A pointer to the struct of this name.
    PtrTo(&'static str),
}

/// Byte offset of `strukt.field`, checked against `want`.
fn field(btf: &Btf, strukt: &str, field: &str, want: Want) -> Result<u32, LayoutError> {
    let shape = |why: &str| LayoutError::Shape(format!("{strukt}.{field}: {why}"));
    let id = btf.struct_named(strukt)?;
    let (bits, ty) = btf
        .member(id, field, 0)
        .ok_or_else(|| shape("no such member"))?;
    let (_, t) = btf.resolve(ty).ok_or_else(|| shape("unresolvable type"))?;
    let fits = match want {
        Want::Int(bytes) => t.kind == KIND_INT && t.size_or_type == bytes,
        Want::Comm => {
            let elem = u32_at(t.extra, 0);
            let nelems = u32_at(t.extra, 8);
            t.kind == KIND_ARRAY
                && nelems == Some(16)
                && elem
                    .and_then(|e| btf.resolve(e))
                    .is_some_and(|(_, e)| e.kind == KIND_INT && e.size_or_type == 1)
        }
        Want::PtrTo(target) => {
            t.kind == KIND_PTR
                && btf
                    .resolve(t.size_or_type)
                    .is_some_and(|(_, s)| s.kind == KIND_STRUCT && s.name == target)
        }
    };
    if !fits {
        return Err(shape("not of the expected type"));
    }
    // The programs read whole, aligned words.
    let align = match want {
        Want::Int(bytes) => u64::from(bytes) * 8,
        Want::Comm | Want::PtrTo(_) => 64,
    };
    if bits % align != 0 {
        return Err(shape("not aligned"));
    }
    u32::try_from(bits / 8).map_err(|_| shape("offset too large"))
}

/// The layout in BTF blob `data`.
pub fn from_btf(data: &[u8]) -> Result<TaskLayout, LayoutError> {
    let btf = Btf::parse(data)?;
    Ok(TaskLayout {
        enabled: 1,
        task_pid: field(&btf, "task_struct", "pid", Want::Int(4))?,
        task_tgid: field(&btf, "task_struct", "tgid", Want::Int(4))?,
        task_comm: field(&btf, "task_struct", "comm", Want::Comm)?,
        task_cgroups: field(&btf, "task_struct", "cgroups", Want::PtrTo("css_set"))?,
        css_set_dfl_cgrp: field(&btf, "css_set", "dfl_cgrp", Want::PtrTo("cgroup"))?,
        cgroup_kn: field(&btf, "cgroup", "kn", Want::PtrTo("kernfs_node"))?,
        kernfs_node_id: field(&btf, "kernfs_node", "id", Want::Int(8))?,
    })
}

/// The layout of the running kernel, from `path` (normally `VMLINUX_BTF`).
pub fn from_file(path: &Path) -> Result<TaskLayout, LayoutError> {
    let data = std::fs::read(path).map_err(|source| LayoutError::Read {
        path: path.display().to_string(),
        source,
    })?;
    from_btf(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes small BTF blobs, type by type, for the parser's tests.
    struct Blob {
        types: Vec<u8>,
        strings: Vec<u8>,
        next: u32,
    }

    impl Blob {
        fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
                next: 1,
            }
        }

        fn name(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn put(
            &mut self,
            name: &str,
            kind: u32,
            vlen: u32,
            size_or_type: u32,
            extra: &[u8],
        ) -> u32 {
            let name = self.name(name);
            for w in [name, (kind << 24) | vlen, size_or_type] {
                self.types.extend_from_slice(&w.to_ne_bytes());
            }
            self.types.extend_from_slice(extra);
            self.next += 1;
            self.next - 1
        }

        fn int(&mut self, name: &str, bytes: u32) -> u32 {
            self.put(name, KIND_INT, 0, bytes, &(bytes * 8).to_ne_bytes())
        }

        fn ptr(&mut self, to: u32) -> u32 {
            self.put("", KIND_PTR, 0, to, &[])
        }

        fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
            let extra: Vec<u8> = [elem, index, n]
                .iter()
                .flat_map(|w| w.to_ne_bytes())
                .collect();
            self.put("", KIND_ARRAY, 0, 0, &extra)
        }

        /// A struct of `size` bytes with members (name, type, bit offset).
        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let mut extra = Vec::new();
            for (m, ty, bits) in members {
                let off = self.name(m);
                for w in [off, *ty, *bits] {
                    extra.extend_from_slice(&w.to_ne_bytes());
                }
            }
            self.put(name, KIND_STRUCT, members.len() as u32, size, &extra)
        }

        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9f_u16.to_ne_bytes());
            out.extend_from_slice(&[1, 0]);
            let (tl, sl) = (self.types.len() as u32, self.strings.len() as u32);
            for w in [24, 0, tl, tl, sl] {
                out.extend_from_slice(&w.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A kernel-shaped blob: tgid inside an anonymous struct, ids through typedefs.
    /// `cgroups_to` names the struct `task_struct.cgroups` points to.
    fn kernel_like(cgroups_to: &str, with_comm: bool) -> Vec<u8> {
        let mut b = Blob::new();
        let int = b.int("int", 4);
        let pid_t = b.put("pid_t", KIND_TYPEDEF, 0, int, &[]);
        let ull = b.int("unsigned long long", 8);
        let u64_t = b.put("u64", KIND_TYPEDEF, 0, ull, &[]);
        let chr = b.int("char", 1);
        let comm = b.array(chr, int, 16);
        let kn = b.strukt("kernfs_node", 136, &[("count", int, 0), ("id", u64_t, 768)]);
        let kn_p = b.ptr(kn);
        let cgroup = b.strukt("cgroup", 2240, &[("kn", kn_p, 2048)]);
        let cgroup_p = b.ptr(cgroup);
        let css_set = b.strukt("css_set", 544, &[("dfl_cgrp", cgroup_p, 896)]);
        b.strukt("decoy", 8, &[("x", int, 0)]);
        let target = if cgroups_to == "css_set" {
            css_set
        } else {
            b.strukt(cgroups_to, 8, &[("x", int, 0)])
        };
        let css_p = b.ptr(target);
        let ids = b.strukt("", 8, &[("tgid", pid_t, 32)]);
        let mut members = vec![
            ("pid", pid_t, 10112),
            ("", ids, 10112),
            ("cgroups", css_p, 19008),
        ];
        if with_comm {
            members.push(("comm", comm, 14016));
        }
        b.put("task_struct", KIND_FWD_FOR_TEST, 0, 0, &[]);
        b.strukt("task_struct", 3264, &members);
        b.bytes()
    }

    /// A forward declaration of the same name comes first in real BTF too.
    const KIND_FWD_FOR_TEST: u32 = 7;

    #[test]
    fn offsets_of_a_kernel_shaped_blob() {
        let l = from_btf(&kernel_like("css_set", true)).expect("layout");
        assert_eq!(
            l,
            TaskLayout {
                enabled: 1,
                task_pid: 1264,
                task_tgid: 1268,
                task_comm: 1752,
                task_cgroups: 2376,
                css_set_dfl_cgrp: 112,
                cgroup_kn: 256,
                kernfs_node_id: 96,
            }
        );
    }

    #[test]
    fn a_missing_or_wrongly_typed_field_is_named() {
        let e = from_btf(&kernel_like("css_set", false)).unwrap_err();
        assert_eq!(e.to_string(), "task_struct.comm: no such member");
        let e = from_btf(&kernel_like("decoy2", true)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "task_struct.cgroups: not of the expected type"
        );
    }

    #[test]
    fn broken_blobs_are_errors_not_panics() {
        let good = kernel_like("css_set", true);
        for cut in 0..good.len() {
            assert!(
                from_btf(&good[..cut]).is_err(),
                "a blob cut at {cut} parsed"
            );
        }
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        assert!(matches!(from_btf(&swapped), Err(LayoutError::Format(_))));
        let mut bad_kind = good;
        // The first type's info word: kind 31 does not exist.
        bad_kind[24 + 7] = 31;
        assert!(matches!(from_btf(&bad_kind), Err(LayoutError::Format(_))));
        assert!(matches!(
            from_file(Path::new("/nonexistent/vmlinux")),
            Err(LayoutError::Read { .. })
        ));
    }

    #[test]
    fn the_running_kernel_has_a_layout() {
        if !Path::new(VMLINUX_BTF).exists() {
            eprintln!("SKIP: {VMLINUX_BTF} is absent on this machine");
            assert!(std::env::var_os("CI").is_none(), "CI machines have BTF");
            return;
        }
        let l = from_file(Path::new(VMLINUX_BTF)).expect("this kernel's layout");
        assert_eq!(l.enabled, 1);
        assert_eq!(l.task_tgid, l.task_pid + 4, "pid and tgid sit side by side");
        assert!(l.task_comm > 0 && l.task_cgroups > 0 && l.cgroup_kn > 0);
    }
}
