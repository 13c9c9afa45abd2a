//! Just enough of a BTF reader to find struct member offsets in
//! /sys/kernel/btf/vmlinux at load time, so that the probes read the right
//! fields on whatever kernel they run on (nothing is baked in at build time).
//!
//! Hand-written rather than a dependency: the one maintained BTF crate
//! (btf-rs) is LGPL, and all we need is struct members (format:
//! https://docs.kernel.org/bpf/btf.html).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use thiserror::Error;

/// Where the running kernel exposes its own BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;

/// The kernel's BTF file could not be used.
#[derive(Debug, Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF at {} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF in {}", path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
}

/// Bytes that are not the BTF this reader understands.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("BTF truncated at byte {0}")]
    Truncated(usize),
    #[error("not BTF (bad magic; only little-endian BTF is supported)")]
    BadMagic,
    #[error("section offset overflows")]
    OffsetOverflows,
    #[error("section length overflows")]
    LengthOverflows,
    #[error("section {start}..{end} past end of data")]
    PastEnd { start: usize, end: usize },
    #[error("unknown BTF kind {kind} at type id {type_id}")]
    UnknownKind { kind: u32, type_id: usize },
}

/// A struct member the caller asked for is not usable on this kernel.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MemberError {
    #[error("struct {struct_name} not in kernel BTF")]
    NoStruct { struct_name: String },
    #[error("{struct_name}.{path}: `{part}` is not inside a struct")]
    NotInsideStruct {
        struct_name: String,
        path: String,
        part: String,
    },
    #[error("struct {struct_name} has no member {path} on this kernel")]
    NoMember { struct_name: String, path: String },
    #[error("{struct_name}.{path} is a bitfield")]
    Bitfield { struct_name: String, path: String },
}

const KIND_INT: u32 = 1;
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

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct TypeEntry {
    kind: u32,
    name_off: u32,
    /// For typedef/const/volatile/...: the referenced type id.
    type_ref: u32,
    members: Vec<Member>,
}

/// Parsed kernel BTF: struct and union layouts plus the type-reference chain.
pub struct Btf {
    strings: Vec<u8>,
    /// Index = type id; id 0 is `void`.
    types: Vec<TypeEntry>,
    structs_by_name: HashMap<String, u32>,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ParseError> {
    let s = b
        .get(off..off.saturating_add(2))
        .ok_or(ParseError::Truncated(off))?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ParseError> {
    let s = b
        .get(off..off.saturating_add(4))
        .ok_or(ParseError::Truncated(off))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::parse(&data).map_err(|source| BtfError::Malformed {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn parse(data: &[u8]) -> Result<Btf, ParseError> {
        if u16_at(data, 0)? != MAGIC {
            return Err(ParseError::BadMagic);
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let section = |off: usize, len: usize| {
            let start = hdr_len
                .checked_add(off)
                .ok_or(ParseError::OffsetOverflows)?;
            let end = start.checked_add(len).ok_or(ParseError::LengthOverflows)?;
            data.get(start..end)
                .ok_or(ParseError::PastEnd { start, end })
        };
        let tdata = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();

        let mut types = vec![TypeEntry {
            kind: 0,
            name_off: 0,
            type_ref: 0,
            members: vec![],
        }];
        let mut pos = 0usize;
        while pos < tdata.len() {
            let name_off = u32_at(tdata, pos)?;
            let info = u32_at(tdata, pos + 4)?;
            let size_or_type = u32_at(tdata, pos + 8)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = pos + i * 12;
                        let offset = u32_at(tdata, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(tdata, m)?,
                            type_id: u32_at(tdata, m + 4)?,
                            bit_offset: if kind_flag {
                                offset & 0xff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                0 | 20.. => {
                    return Err(ParseError::UnknownKind {
                        kind,
                        type_id: types.len(),
                    });
                }
                _ => 0,
            };
            pos += extra;
            types.push(TypeEntry {
                kind,
                name_off,
                type_ref: size_or_type,
                members,
            });
        }

        let mut btf = Btf {
            strings,
            types,
            structs_by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && !t.members.is_empty() {
                let name = btf.name(t.name_off).to_string();
                btf.structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let tail = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    /// Follows typedef/const/volatile/restrict/type-tag to the underlying type.
    fn strip(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.type_ref
                }
                _ => break,
            }
        }
        id
    }

    /// Bit offset of member `name` in struct/union `id`, searching anonymous
    /// struct/union members too (as C does). Returns (bit offset, member type).
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        let t = self.types.get(id as usize)?;
        for m in &t.members {
            let mname = self.name(m.name_off);
            if mname == name {
                return Some((m.bit_offset, m.type_id));
            }
            if mname.is_empty() && depth < 8 {
                let inner = self.strip(m.type_id);
                if let Some((off, ty)) = self.find_member(inner, name, depth + 1) {
                    return Some((m.bit_offset + off, ty));
                }
            }
        }
        None
    }

    /// Byte offset of `path` (e.g. `"ns.inum"`) inside `struct struct_name`.
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32, MemberError> {
        let mut id =
            *self
                .structs_by_name
                .get(struct_name)
                .ok_or_else(|| MemberError::NoStruct {
                    struct_name: struct_name.into(),
                })?;
        let mut bits = 0u32;
        for part in path.split('.') {
            let t = self.types.get(id as usize).map(|t| t.kind);
            if !matches!(t, Some(KIND_STRUCT | KIND_UNION)) {
                return Err(MemberError::NotInsideStruct {
                    struct_name: struct_name.into(),
                    path: path.into(),
                    part: part.into(),
                });
            }
            let (off, ty) = self
                .find_member(id, part, 0)
                .ok_or_else(|| MemberError::NoMember {
                    struct_name: struct_name.into(),
                    path: path.into(),
                })?;
            bits += off;
            id = self.strip(ty);
        }
        if !bits.is_multiple_of(8) {
            return Err(MemberError::Bitfield {
                struct_name: struct_name.into(),
                path: path.into(),
            });
        }
        Ok(bits / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a little-endian BTF blob from raw type records and a string table.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&24u32.to_le_bytes());
        let tlen = (types.len() * 4) as u32;
        for v in [0u32, tlen, tlen, strings.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for t in types {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(strings);
        out
    }

    fn info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
        (kind << 24) | vlen | if kind_flag { 1 << 31 } else { 0 }
    }

    // strings: 0:"" 1:"int" 5:"outer" 11:"a" 13:"b" 15:"inner" 21:"c"
    const STRINGS: &[u8] = b"\0int\0outer\0a\0b\0inner\0c\0";

    fn sample() -> Btf {
        let types = [
            // 1: int (4 bytes)
            1,
            info(KIND_INT, 0, false),
            4,
            32,
            // 2: struct inner { int c @ bit 32 }
            15,
            info(KIND_STRUCT, 1, false),
            8,
            21,
            1,
            32,
            // 3: typedef inner_t = 2
            0,
            info(KIND_TYPEDEF, 0, false),
            2,
            // 4: struct outer { int a @0; <anon union> @64 { int b @0 }; inner_t inner @128 }
            5,
            info(KIND_STRUCT, 3, true),
            32,
            11,
            1,
            0,
            0,
            5,
            64,
            15,
            3,
            128,
            // 5: anonymous union { int b }
            0,
            info(KIND_UNION, 1, false),
            4,
            13,
            1,
            0,
        ];
        Btf::parse(&blob(&types, STRINGS)).unwrap()
    }

    #[test]
    fn offsets_of_plain_anonymous_and_nested_members() {
        let btf = sample();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "b").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "inner.c").unwrap(), 16 + 4);
    }

    #[test]
    fn missing_things_are_clear_errors() {
        let btf = sample();
        let e = btf.member_offset("outer", "zz").unwrap_err().to_string();
        assert!(e.contains("no member zz"), "{e}");
        let e = btf.member_offset("nope", "a").unwrap_err().to_string();
        assert!(e.contains("struct nope not in kernel BTF"), "{e}");
        let e = btf.member_offset("outer", "a.x").unwrap_err().to_string();
        assert!(e.contains("not inside a struct"), "{e}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(b"\x9f\xeb\x01\x00\xff\xff\xff\xff").is_err());
        let mut b = blob(&[1, info(KIND_STRUCT, 1000, false), 4], STRINGS);
        assert!(Btf::parse(&b).is_err());
        b[2] = 0;
        let _ = Btf::parse(&b);
    }

    #[test]
    fn this_kernels_task_struct() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        let btf = Btf::from_file(path).unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        assert_eq!(tgid, pid + 4, "tgid follows pid in every kernel since 2.6");
        assert!(btf.member_offset("mm_struct", "arg_start").is_ok());
        assert!(btf.member_offset("pid_namespace", "ns.inum").is_ok());
    }
}
