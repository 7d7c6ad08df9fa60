//! What a program load is asked for: `union bpf_attr`'s `BPF_PROG_LOAD` fields
//! (`include/uapi/linux/bpf.h`). The object's attributes sit beside the object; the load
//! pipeline ([`crate::load`]) reads them.

use crate::insn::Insn;
use crate::patch::LineInfo;
use crate::uapi::{AttachType, ProgFlags, ProgType};

/// What `prog_load` is asked for (`union bpf_attr` for `BPF_PROG_LOAD`).
#[derive(Clone, Copy, Debug)]
pub struct ProgLoadAttr<'a> {
    /// The program type.
    pub prog_type: ProgType,
    /// The instructions.
    pub insns: &'a [Insn],
    /// The attach type the program is loaded for, if the type needs one.
    pub expected_attach_type: Option<AttachType>,
    /// Load flags.
    pub flags: ProgFlags,
    /// Name (at most 15 characters: alphanumerics, `_` and `.`).
    pub name: &'a str,
    /// Blind the program's constants (see [`crate::blind`]); also on for every program while
    /// [`crate::blind::set_global`] is set, like the kernel's `bpf_jit_harden`.
    pub blind: bool,
    /// For [`ProgType::RawBuffer`]: the length of the buffer the program will run on (R2 holds
    /// it on entry). The verifier judges memory accesses against it and
    /// [`crate::syscall::prog_test_run`] refuses a buffer of any other length. `None` is a
    /// program that runs on an empty buffer. Other program types must leave it `None`.
    pub ctx_size: Option<u32>,
    /// Verify with root's rules (`allow_ptr_leaks`, `allow_uninit_stack`) instead of the
    /// default ones of a loader with `CAP_BPF` but without `CAP_PERFMON`.
    pub privileged: bool,
    /// Insert explicit zero extensions after 32-bit definitions whose upper half is read
    /// ([`crate::verifier::zext`]); `None` asks the registered JIT
    /// ([`crate::jit::needs_zext`], the kernel's `bpf_jit_needs_zext()`).
    pub needs_zext: Option<bool>,
    /// Source positions of the instructions (`line_info`, from the object's `.BTF.ext`):
    /// `insn_off` strictly increasing from 0, each on a whole instruction (checked by the
    /// load's gate, as `check_btf_line` does). Every rewrite on the patch list carries them
    /// ([`crate::patch::PatchList::linearize`]); the program keeps them
    /// ([`crate::Prog::line_info`]). The strings they name live in the loader's BTF.
    pub line_info: &'a [LineInfo],
}

impl<'a> ProgLoadAttr<'a> {
    /// A load of `insns` as `prog_type` with no flags, no attach type and no name.
    pub fn new(prog_type: ProgType, insns: &'a [Insn]) -> Self {
        ProgLoadAttr {
            prog_type,
            insns,
            expected_attach_type: None,
            flags: ProgFlags::empty(),
            name: "",
            blind: false,
            ctx_size: None,
            privileged: false,
            needs_zext: None,
            line_info: &[],
        }
    }

    /// The same load with source positions `line_info` (see [`ProgLoadAttr::line_info`]).
    pub fn with_line_info(self, line_info: &'a [LineInfo]) -> Self {
        ProgLoadAttr { line_info, ..self }
    }

    /// The same load with zero extension forced on or off (see [`ProgLoadAttr::needs_zext`]).
    pub fn with_needs_zext(self, needs_zext: bool) -> Self {
        ProgLoadAttr {
            needs_zext: Some(needs_zext),
            ..self
        }
    }

    /// The same load for a raw buffer of `len` bytes (see [`ProgLoadAttr::ctx_size`]).
    pub fn with_ctx_size(self, len: u32) -> Self {
        ProgLoadAttr {
            ctx_size: Some(len),
            ..self
        }
    }

    /// The same load verified with root's rules (see [`ProgLoadAttr::privileged`]).
    pub fn with_privileged(self, privileged: bool) -> Self {
        ProgLoadAttr { privileged, ..self }
    }

    /// The same load with expected attach type `attach`.
    pub fn with_attach_type(self, attach: AttachType) -> Self {
        ProgLoadAttr {
            expected_attach_type: Some(attach),
            ..self
        }
    }

    /// The same load named `name`.
    pub fn with_name(self, name: &'a str) -> Self {
        ProgLoadAttr { name, ..self }
    }
}
