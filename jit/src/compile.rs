//! BPF → x86-64 compilation (Linux `bpf_int_jit_compile()` in `arch/x86/net/bpf_jit_comp.c`).
//!
//! [`emit`] decodes the (already load-checked and rewritten) instructions, finds subprograms,
//! then runs code-generation passes until the image size stops changing, and one last pass that
//! must reproduce the converged layout exactly. [`compile`] puts those bytes into host
//! executable memory as a [`JitImage`].

mod alu;
mod call;
mod dispatch;
mod frame;
mod image;
mod mem;
mod pass;
mod regmap;
mod repeat;
mod subprog;
mod tailcall;
mod tailcall_direct;

pub use call::{CallxRet, kbpf_jit_callx};
pub use dispatch::compile_dispatch;
pub use frame::{MAY_GOTO_SLOT, STACK, TAIL_CALL_CNT_SLOT, TAIL_CALL_OFFSET};
pub use image::JitImage;
pub use regmap::bpf_reg;
pub use repeat::Runner;
pub use tailcall_direct::DirectSite;

use alloc::vec::Vec;
use kbpf::Errno;
use kbpf::helpers::runtime_proto;
use kbpf::insn::{BPF_REG_AX, Call, Insn, Op, decode_internal};
use kbpf::uapi::{ProgType, pseudo};
use pass::{Layout, Prepared, pass};

/// Passes before giving up on convergence (`MAX_PASSES`).
const MAX_PASSES: usize = 20;

fn prepare(
    insns: &[Insn],
    prog_type: ProgType,
    used_maps: &[u64],
    verified: bool,
) -> Result<Prepared, Errno> {
    if insns.is_empty() {
        return Err(Errno::EINVAL);
    }
    let mut ops: Vec<Option<Op>> = Vec::new();
    ops.try_reserve_exact(insns.len())?;
    let mut protos = Vec::new();
    protos.try_reserve_exact(insns.len())?;
    let mut kfuncs = Vec::new();
    kfuncs.try_reserve_exact(insns.len())?;
    let mut maps = Vec::new();
    let mut pc = 0;
    while pc < insns.len() {
        // The load path's own rewrites (constant blinding) may use the hidden register AX.
        let op = decode_internal(insns, pc).map_err(|_| Errno::EINVAL)?;
        kfuncs.push(kfunc_target(&op)?);
        let proto = match op {
            Op::Call(Call::Helper(id)) => {
                let p = runtime_proto(prog_type, id).ok_or(Errno::EINVAL)?;
                if p.func.is_none() {
                    return Err(Errno::EINVAL);
                }
                Some(p)
            }
            Op::LdPacket { .. } => return Err(Errno::ENOTSUPP),
            // The fetching or/and/xor loop parks R0 in AX (see `regmap`); blinding never
            // emits an atomic on AX, so nothing loses by refusing one.
            Op::Atomic { dst, src, .. } if dst == BPF_REG_AX || src == BPF_REG_AX => {
                return Err(Errno::ENOTSUPP);
            }
            Op::LdImm64 {
                pseudo: pseudo::MAP_FD,
                imm,
                ..
            } => {
                if !maps.contains(&imm) {
                    maps.try_reserve(1)?;
                    maps.push(imm);
                }
                None
            }
            _ => None,
        };
        ops.push(Some(op));
        protos.push(proto);
        if op.slots() == 2 {
            ops.push(None);
            protos.push(None);
            kfuncs.push(0);
        }
        pc += op.slots();
    }
    let subs = subprog::analyze(&ops)?;
    let frame = frame::FrameInfo {
        sub_may_goto: ops
            .iter()
            .any(|o| matches!(o, Some(Op::MayGoto { .. } | Op::TailCall(_)))),
    };
    let named = named_regs(insns, &ops);
    let tail_calls = ops.iter().any(|o| matches!(o, Some(Op::TailCall(_))));
    let mut used = Vec::new();
    used.try_reserve_exact(used_maps.len())?;
    used.extend_from_slice(used_maps);
    let mut main = main_frame(named, tail_calls, &ops, &protos);
    if verified {
        // The verifier refused any read of a register before a write, so zeroing them is
        // unobservable (the interpreter's zeroed registers only matter on the trusted path).
        main.zero = 0;
    }
    let saves = frame::CallSaves::new(named, tail_calls);
    let loop_head = pass::loop_heads(&ops);
    Ok(Prepared {
        ops,
        protos,
        kfuncs,
        subs,
        frame,
        main,
        saves,
        loop_head,
        align_loops: true,
        calls: call::HelperCalls::Far,
        prog_type,
        maps,
        used_maps: used,
    })
}

/// The address a kfunc call jumps to (0 for any other instruction): `ENOTSUPP` for a kfunc
/// without a run-time side (the load refuses those first), `EINVAL` for an unknown id.
fn kfunc_target(op: &Op) -> Result<usize, Errno> {
    let Op::Call(Call::Kfunc(id)) = *op else {
        return Ok(0);
    };
    let k = kbpf::kfunc::find(id).ok_or(Errno::EINVAL)?;
    Ok(k.func.ok_or(Errno::ENOTSUPP)? as usize)
}

/// The BPF registers (bit `n`: R`n`, R10 included) some instruction names, as destination or
/// source, or that a call or exit reads: a register no instruction names can't be observed.
fn named_regs(insns: &[Insn], ops: &[Option<Op>]) -> u16 {
    let mut named = 0u16;
    for (insn, op) in insns.iter().zip(ops) {
        for r in [insn.dst(), insn.src()] {
            if r <= 10 {
                named |= 1 << r;
            }
        }
        match op {
            Some(Op::Call(_)) => named |= 0b11_1111,
            Some(Op::Exit) => named |= 1,
            _ => {}
        }
    }
    named
}

/// The parts of the main prologue the program can observe (see `frame`'s module docs).
fn main_frame(
    named: u16,
    tail_calls: bool,
    ops: &[Option<Op>],
    protos: &[Option<&'static kbpf::helpers::HelperProto>],
) -> frame::MainFrame {
    if tail_calls {
        return frame::MainFrame::FULL;
    }
    let unwinds = ops.iter().zip(protos).any(|(o, p)| {
        matches!(o, Some(Op::Call(Call::Reg(_)))) || p.is_some_and(|p| p.unwind_on_zero)
    });
    let may_goto = ops.iter().any(|o| matches!(o, Some(Op::MayGoto { .. })));
    let calls = ops.iter().any(|o| matches!(o, Some(Op::Call(_))));
    frame::MainFrame {
        frame: named >> 10 & 1 != 0 || calls || may_goto,
        bottom_fp: unwinds,
        tcc_ptr: false,
        may_goto,
        zero: named & 0x3ff,
    }
}

/// Compiles `insns` to x86-64 machine code without installing it: the image bytes and, per
/// instruction slot, the offset where its code starts (an `ld_imm64`'s second slot gets the
/// offset of the following code).
///
/// Errors: `EINVAL` for what the load path would reject (undecodable instructions, jumps out of
/// their subprogram, unknown helpers or kfuncs, recursion), `E2BIG` for call chains deeper
/// than `MAX_CALL_FRAMES`, `ENOTSUPP` for kfuncs without a run-time side and legacy packet
/// loads, `EFAULT` when the layout does not converge.
pub fn emit(insns: &[Insn], prog_type: ProgType) -> Result<(Vec<u8>, Vec<u32>), Errno> {
    emit_with_pokes(insns, prog_type, &[]).map(|e| (e.code, e.offsets))
}

/// The output of [`emit_with_pokes`].
#[derive(Clone, Debug)]
pub struct Emitted {
    /// The image bytes.
    pub code: Vec<u8>,
    /// Per instruction slot, where its code starts.
    pub offsets: Vec<u32>,
    /// The direct tail calls, each site emitted falling through.
    pub pokes: Vec<DirectSite>,
    /// Offset of the tail-call entry (see `frame`).
    pub tail_entry: u32,
    /// The test-run repeat runner appended after the code, if any (see `repeat`).
    pub runner: Option<Runner>,
}

/// [`emit`], plus the direct tail calls of the code and its tail-call entry, for a program whose
/// `used_maps` have addresses `used_maps` (what verified tail calls' facts index).
pub fn emit_with_pokes(
    insns: &[Insn],
    prog_type: ProgType,
    used_maps: &[u64],
) -> Result<Emitted, Errno> {
    let mut p = prepare(insns, prog_type, used_maps, false)?;
    converge_aligned(&mut p).map(|(e, _)| e)
}

/// [`converge`], falling back to no loop alignment.
fn converge_aligned(p: &mut Prepared) -> Result<(Emitted, Layout), Errno> {
    match converge(p) {
        // Alignment padding can make a jump's distance grow between passes; should that keep
        // the layout from settling, the program is emitted without it.
        Err(Errno::EFAULT) if p.align_loops => {
            p.align_loops = false;
            converge(p)
        }
        r => r,
    }
}

/// Passes until the layout stops changing, then one more that must reproduce it exactly.
fn converge(p: &Prepared) -> Result<(Emitted, Layout), Errno> {
    let (_, mut layout) = pass(p, None)?;
    for _ in 0..MAX_PASSES {
        let (bytes, next) = pass(p, Some(&layout))?;
        if next.total == layout.total {
            // Converged: one more pass with this layout must reproduce it exactly.
            let (fin, fin_layout) = pass(p, Some(&next))?;
            if fin_layout != next || fin.len() != bytes.len() {
                return Err(Errno::EFAULT);
            }
            return Ok((emitted(fin, &fin_layout), fin_layout));
        }
        layout = next;
    }
    Err(Errno::EFAULT)
}

fn emitted(code: Vec<u8>, l: &Layout) -> Emitted {
    Emitted {
        code,
        offsets: l.start.clone(),
        pokes: l.pokes.clone(),
        tail_entry: l.tail_entry,
        runner: None,
    }
}

/// Compiles `insns` and installs the code in host executable memory.
///
/// Helper calls are `call rel32` when the host can place the image within reach of the
/// helpers ([`kbpf::host::Host::exec_install_at`]): the layout converges with 5-byte calls, the
/// host picks the address, and the last pass emits the displacements for it. Otherwise the
/// image is laid out again with position-independent calls.
pub fn compile(insns: &[Insn], prog_type: ProgType) -> Result<JitImage, Errno> {
    compile_program(&kbpf::jit::JitProgram {
        insns,
        prog_type,
        maps: &[],
        verified: false,
    })
}

/// [`compile`] for a program as the kernel's runtime selection hands it over: with the
/// addresses of its `used_maps`, which a verified tail call's
/// [`kbpf::insn::TailCallAux::map`] indexes, and whether the verifier accepted it (then no
/// register is zeroed in the prologue).
pub fn compile_program(prog: &kbpf::jit::JitProgram<'_>) -> Result<JitImage, Errno> {
    let mut p = prepare(prog.insns, prog.prog_type, prog.maps, prog.verified)?;
    let helpers: Vec<usize> = p
        .protos
        .iter()
        .flatten()
        .filter_map(|proto| proto.func.map(|f| f as usize))
        .chain(p.kfuncs.iter().copied().filter(|&f| f != 0))
        .collect();
    if let Some(&near) = helpers.first() {
        p.calls = call::HelperCalls::Near { base: 0 };
        let (mut sized, layout) = converge_aligned(&mut p)?;
        repeat::attach(&mut sized)?;
        let len = sized.code.len();
        let placed = JitImage::install_at(len, near, |base| {
            if !helpers.iter().all(|&f| call::rel32_reaches(base, len, f)) {
                return Err(Errno::ERANGE);
            }
            p.calls = call::HelperCalls::Near { base };
            let (code, l) = pass(&p, Some(&layout))?;
            if l != layout {
                return Err(Errno::EFAULT);
            }
            let mut e = emitted(code, &l);
            repeat::attach(&mut e)?;
            Ok(e)
        });
        match placed {
            Err(Errno::ERANGE) => p.calls = call::HelperCalls::Far,
            r => return r,
        }
    }
    let mut e = converge_aligned(&mut p)?.0;
    repeat::attach(&mut e)?;
    JitImage::install(e)
}
