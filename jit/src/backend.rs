//! The JIT as the kernel's backend: what a host registers with `kbpf::jit::register` so that
//! `prog_load` compiles programs (Linux `bpf_int_jit_compile`).

use crate::compile::{JitImage, compile_dispatch, compile_program};
use alloc::boxed::Box;

/// The x86-64 JIT backend.
#[derive(Debug)]
pub struct X86Jit;

/// The instance hosts register: `kbpf::jit::register(&kbpf_jit::X86_JIT)`.
pub static X86_JIT: X86Jit = X86Jit;

impl kbpf::jit::JitImage for JitImage {
    fn entry(&self) -> usize {
        JitImage::entry(self)
    }

    fn tail_call_entry(&self) -> usize {
        JitImage::tail_call_entry(self)
    }

    fn size(&self) -> usize {
        JitImage::size(self)
    }

    fn repeat_entry(&self) -> usize {
        JitImage::repeat_entry(self)
    }

    fn code(&self) -> kbpf::Result<alloc::vec::Vec<u8>> {
        JitImage::code(self)
    }

    fn insn_offsets(&self) -> &[u32] {
        JitImage::insn_offsets(self)
    }

    fn poke_sites(&self) -> &[kbpf::jit::PokeSite] {
        JitImage::poke_sites(self)
    }

    fn poke(&self, site: usize, target: usize) -> kbpf::Result {
        JitImage::poke(self, site, target)
    }
}

impl kbpf::jit::JitCompiler for X86Jit {
    fn compile(
        &self,
        prog: &kbpf::jit::JitProgram<'_>,
    ) -> kbpf::Result<Box<dyn kbpf::jit::JitImage>> {
        Ok(Box::new(compile_program(prog)?))
    }

    fn compile_dispatch(
        &self,
        progs: &[usize],
        next: i32,
    ) -> kbpf::Result<Box<dyn kbpf::jit::JitImage>> {
        Ok(Box::new(compile_dispatch(progs, next)?))
    }
}
