//! Kernel functions (kfuncs) a program may call with `call` and `src_reg` =
//! `BPF_PSEUDO_KFUNC_CALL`: the registry the verifier judges those calls against.
//!
//! Mirrors `struct btf_kfunc_id_set` and `register_btf_kfunc_id_set` /
//! `btf_kfunc_id_set_contains` / `btf_kfunc_flags` of `kernel/bpf/btf.c`, the `KF_*` flags of
//! `include/linux/btf.h`, and the argument classification of `get_kfunc_ptr_arg_type` in
//! `kernel/bpf/verifier.c`. kbpf has no BTF: a kfunc's id (the call's `imm`, a BTF id in Linux)
//! is fixed by its registration, and its prototype is spelled out here instead of being read
//! from BTF. As in Linux, an argument named `*__sz` right after a memory argument is that
//! memory's size in bytes; a memory argument without one points to a struct of fixed size.
//!
//! The registry has built-in entries (the conntrack kfuncs of [`crate::netfilter`], with their
//! final signatures and run-time sides) and entries other modules add with [`register`] at
//! init or at run time. A registered entry with the same id and name as a built-in one
//! replaces it.

use crate::helpers::HelperFn;
use crate::uapi::ProgType;
use crate::{Errno, Result};
use alloc::vec::Vec;
use bitflags::bitflags;

/// A kernel struct a program may hold a pointer to (`PTR_TO_BTF_ID`): its name, how many bytes
/// of it programs may read, and which byte ranges they may write.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KernelStruct {
    /// The struct's name (`nf_conn`).
    pub name: &'static str,
    /// Bytes from the start that programs may read.
    pub size: u32,
    /// `(offset, size)` of each field programs may write (`btf_struct_access` callbacks).
    pub writable: &'static [(u32, u32)],
}

/// The kind of one kfunc argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KfuncArgKind {
    /// The program's context (`KF_ARG_PTR_TO_CTX`): a struct that is the context of the
    /// listed program types only.
    Ctx {
        /// The context struct's name (`xdp_md`, `__sk_buff`).
        name: &'static str,
        /// The program types whose context it is.
        types: &'static [ProgType],
    },
    /// Memory the kfunc reads and writes (`KF_ARG_PTR_TO_MEM` / `KF_ARG_PTR_TO_MEM_SIZE`): of
    /// the size the next argument gives when that one is named `*__sz`, else of `size` bytes.
    Mem {
        /// The pointed-to struct's name.
        pointee: &'static str,
        /// Its size, when no `__sz` argument follows.
        size: u32,
    },
    /// A number (a `*__sz` argument is one).
    Scalar,
    /// A trusted pointer to a kernel object of this struct (`KF_ARG_PTR_TO_BTF_ID`).
    Obj(&'static KernelStruct),
}

/// One argument: its name (the `__sz` convention reads it) and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KfuncArg {
    /// The parameter name as in the kernel's prototype.
    pub name: &'static str,
    /// What the argument must be.
    pub kind: KfuncArgKind,
}

/// What a kfunc returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KfuncRet {
    /// Nothing (R0 is not readable afterwards).
    Void,
    /// A number.
    Scalar,
    /// A pointer to a kernel object of this struct.
    Obj(&'static KernelStruct),
}

bitflags! {
    /// Kfunc flags (`KF_*` of `include/linux/btf.h`, same bit values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct KfuncFlags: u32 {
        /// Returns a referenced object the program must release.
        const ACQUIRE = 1 << 0;
        /// Releases the referenced object passed as its object argument.
        const RELEASE = 1 << 1;
        /// May return NULL; the program must check before use.
        const RET_NULL = 1 << 2;
        /// Pointer arguments must be trusted and non-NULL.
        const TRUSTED_ARGS = 1 << 4;
    }
}

/// One kernel function.
#[derive(Debug)]
pub struct Kfunc {
    /// The id a call's `imm` names it by.
    pub id: u32,
    /// The function's name (`bpf_xdp_ct_lookup`).
    pub name: &'static str,
    /// Its arguments, R1 upwards (at most five).
    pub args: &'static [KfuncArg],
    /// Its return value.
    pub ret: KfuncRet,
    /// `KF_*` flags.
    pub flags: KfuncFlags,
    /// The program types that may call it (the kfunc id sets registered per type).
    pub prog_types: &'static [ProgType],
    /// The run-time side; `None` while only the verifier knows the function (a program calling
    /// it is then refused at load with `ENOTSUPP`).
    pub func: Option<HelperFn>,
}

impl Kfunc {
    /// Whether argument `i` is the size of argument `i - 1` (its name ends in `__sz`).
    pub fn is_size_arg(&self, i: usize) -> bool {
        i > 0
            && self.args.get(i).is_some_and(|a| a.name.ends_with("__sz"))
            && matches!(self.args[i - 1].kind, KfuncArgKind::Mem { .. })
    }

    /// Whether a program calling it can run: the function has a run-time side.
    pub fn has_runtime(&self) -> bool {
        self.func.is_some()
    }

    /// Sets up what the function needs before a program calling it may run, so that its
    /// first call does not (the conntrack table, created at the first load of a program
    /// using it rather than inside a run; once a host is registered, as runs need one):
    /// `ENOMEM` if that fails.
    pub fn prepare(&self) -> Result {
        let ct = crate::netfilter::kfuncs::KFUNCS
            .iter()
            .any(|k| core::ptr::eq(*k, self));
        if ct && crate::host::try_get().is_some() {
            crate::netfilter::conntrack()?;
        }
        Ok(())
    }

    /// Whether `prog_type` may call it.
    pub fn allowed_for(&self, prog_type: ProgType) -> bool {
        self.prog_types.contains(&prog_type)
    }

    /// Prototype rules every entry must follow: at most five arguments, every `__sz` argument
    /// a scalar right after a memory argument, fixed-size memory of at least one byte.
    fn well_formed(&self) -> bool {
        self.args.len() <= 5
            && self.args.iter().enumerate().all(|(i, a)| {
                if a.name.ends_with("__sz") {
                    a.kind == KfuncArgKind::Scalar && self.is_size_arg(i)
                } else {
                    match a.kind {
                        KfuncArgKind::Mem { size, .. } => size > 0 || self.is_size_arg(i + 1),
                        _ => true,
                    }
                }
            })
    }
}

pub use crate::netfilter::kfuncs::{NF_CONN, NF_CONN_INIT, ids};

/// The built-in kfuncs: the conntrack ones ([`crate::netfilter::kfuncs`]).
static BUILTIN: &[&Kfunc] = &crate::netfilter::kfuncs::KFUNCS;

/// Entries added with [`register`]. A plain `spin::RwLock` rather than the sync facade: it is a
/// static (loom's types are not const-constructible).
static REGISTERED: spin::RwLock<Vec<&'static Kfunc>> = spin::RwLock::new(Vec::new());

/// Adds `k` to the registry (`register_btf_kfunc_id_set`).
///
/// Fails with `EINVAL` for a malformed prototype (see [`Kfunc`]'s argument rules), `EEXIST`
/// when a registered entry has the same id, or a built-in one has the same id under another
/// name; `ENOMEM` if the registry cannot grow. A registered entry with the id and name of a
/// built-in one replaces it.
pub fn register(k: &'static Kfunc) -> Result {
    if !k.well_formed() || i32::try_from(k.id).is_err() {
        return Err(Errno::EINVAL);
    }
    if BUILTIN.iter().any(|b| b.id == k.id && b.name != k.name) {
        return Err(Errno::EEXIST);
    }
    let mut reg = REGISTERED.write();
    if reg.iter().any(|r| r.id == k.id) {
        return Err(Errno::EEXIST);
    }
    reg.try_reserve(1)?;
    reg.push(k);
    Ok(())
}

/// The kfunc with id `id`, whatever the program type (`btf_kfunc_id_set_contains` before the
/// per-type filter), or `None` when no function has that id.
pub fn find(id: i32) -> Option<&'static Kfunc> {
    let id = u32::try_from(id).ok()?;
    if let Some(k) = REGISTERED.read().iter().find(|k| k.id == id) {
        return Some(*k);
    }
    BUILTIN.iter().find(|k| k.id == id).copied()
}

/// The kfunc named `name` (what a loader resolves an object's `extern ... __ksym` function
/// declarations against, as libbpf looks the name up in the kernel's BTF), or `None`.
pub fn find_by_name(name: &str) -> Option<&'static Kfunc> {
    if let Some(k) = REGISTERED.read().iter().find(|k| k.name == name) {
        return Some(*k);
    }
    BUILTIN.iter().find(|k| k.name == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn arg(name: &'static str, kind: KfuncArgKind) -> KfuncArg {
        KfuncArg { name, kind }
    }

    #[test]
    fn builtins_are_well_formed_and_pair_sizes() {
        for k in BUILTIN {
            assert!(k.well_formed(), "{}", k.name);
            assert!(k.has_runtime(), "{}", k.name);
        }
        let lookup = find(ids::BPF_XDP_CT_LOOKUP as i32).unwrap();
        assert!(lookup.is_size_arg(2));
        assert!(lookup.is_size_arg(4));
        assert!(!lookup.is_size_arg(1));
        assert!(!lookup.is_size_arg(0));
    }

    static BAD_SZ: Kfunc = Kfunc {
        id: 190_901,
        name: "bad_sz",
        args: &[
            arg("x", KfuncArgKind::Scalar),
            arg("x__sz", KfuncArgKind::Scalar),
        ],
        ret: KfuncRet::Void,
        flags: KfuncFlags::empty(),
        prog_types: &[ProgType::Xdp],
        func: None,
    };

    static CLASH: Kfunc = Kfunc {
        id: ids::BPF_CT_RELEASE,
        name: "not_ct_release",
        args: &[],
        ret: KfuncRet::Void,
        flags: KfuncFlags::empty(),
        prog_types: &[ProgType::Xdp],
        func: None,
    };

    static FRESH: Kfunc = Kfunc {
        id: 190_902,
        name: "fresh",
        args: &[],
        ret: KfuncRet::Scalar,
        flags: KfuncFlags::empty(),
        prog_types: &[ProgType::Xdp],
        func: None,
    };

    #[test]
    fn register_checks_shape_and_ids() {
        assert_eq!(register(&BAD_SZ), Err(Errno::EINVAL));
        assert_eq!(register(&CLASH), Err(Errno::EEXIST));
        assert_eq!(find(190_902).map(|k| k.name), None);
        assert_eq!(register(&FRESH), Ok(()));
        assert_eq!(find(190_902).map(|k| k.name), Some("fresh"));
        assert_eq!(register(&FRESH), Err(Errno::EEXIST));
        assert_eq!(find(-1).map(|k| k.name), None);
        assert_eq!(find_by_name("fresh").map(|k| k.id), Some(190_902));
        assert_eq!(
            find_by_name("bpf_ct_release").map(|k| k.id),
            Some(ids::BPF_CT_RELEASE)
        );
        assert!(find_by_name("bpf_no_such_kfunc").is_none());
        assert_eq!(
            find(ids::BPF_CT_RELEASE as i32).map(|k| k.name),
            Some("bpf_ct_release")
        );
    }
}
