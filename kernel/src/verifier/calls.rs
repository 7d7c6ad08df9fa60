//! Calls and exits: helper calls checked against their prototype, BPF-to-BPF calls with new
//! frames, and `exit` (`check_helper_call`, `check_func_arg`,
//! `check_map_func_compatibility`, `check_func_call`, `prepare_func_exit`,
//! `check_return_code` of `kernel/bpf/verifier.c`).

use super::bounds::Scalar;
use super::explore::{Explorer, Next};
use super::log::Reject;
use super::state::{ByteKind, Frame, Reg, RegType, Slot, VState};
use crate::Errno;
use crate::helpers::{ArgKind, HelperProto, RetKind, func_proto};
use crate::insn::Call;
use crate::uapi::limits::MAX_CALL_FRAMES;
use crate::uapi::{MapType, func};

impl Explorer<'_> {
    /// A `call` instruction.
    pub(super) fn check_call(
        &mut self,
        st: &mut VState,
        pc: usize,
        c: Call,
    ) -> Result<Next, Reject> {
        match c {
            Call::Helper(id) => {
                let proto = func_proto(self.env.prog_type, id).ok_or_else(|| {
                    Reject::new(Errno::EINVAL, pc, format_args!("invalid func unknown#{id}"))
                })?;
                self.check_helper(st, pc, proto)?;
                Ok(Next::Goto(pc + 1))
            }
            Call::Local(imm) => {
                let depth = st.frames.len();
                if depth >= MAX_CALL_FRAMES {
                    return Err(Reject::new(
                        Errno::E2BIG,
                        pc,
                        format_args!("the call stack of {} frames is too deep !", depth + 1),
                    ));
                }
                let target = (pc as i64 + 1 + imm as i64) as usize;
                let mut f = Frame::new(depth as u8, self.cfg.subprog_of(target), Some(pc));
                f.regs[1..=5].copy_from_slice(&st.cur().regs[1..=5]);
                st.frames.push(f);
                Ok(Next::Goto(target))
            }
            Call::Kfunc(id) => Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!("kernel function #{id} is not registered"),
            )),
            Call::Reg(_) => Err(Reject::new(Errno::EINVAL, pc, "unknown opcode 8d")),
        }
    }

    fn check_helper(
        &mut self,
        st: &mut VState,
        pc: usize,
        proto: &HelperProto,
    ) -> Result<(), Reject> {
        let (name, id) = (proto.name, proto.id);
        let mut map = None;
        for (i, kind) in proto.args.iter().enumerate() {
            let r = i as u8 + 1;
            if *kind == ArgKind::None {
                continue;
            }
            let reg = self.read(st, pc, r)?;
            let expect = |want: &str| {
                Err(Reject::acces(
                    pc,
                    format_args!("R{r} type={} expected={want}", reg.ty.name()),
                ))
            };
            match kind {
                ArgKind::None => {}
                ArgKind::Anything => {
                    if reg.ty.is_pointer() && !self.env.privileged {
                        return Err(Reject::acces(
                            pc,
                            format_args!("R{r} leaks addr into helper function"),
                        ));
                    }
                }
                ArgKind::PtrToCtx => {
                    if reg.ty != RegType::PtrToCtx {
                        return expect("ctx");
                    }
                    if reg.off != 0 || reg.var.as_const() != Some(0) {
                        return Err(Reject::acces(
                            pc,
                            format_args!(
                                "dereference of modified ctx ptr R{r} off={} disallowed",
                                reg.off
                            ),
                        ));
                    }
                }
                ArgKind::ConstMapPtr => {
                    if reg.ty != RegType::ConstPtrToMap {
                        return expect("map_ptr");
                    }
                    map = Some((reg.map, self.map_attr(pc, reg.map)?));
                }
                ArgKind::PtrToMapKey | ArgKind::PtrToMapValue => {
                    let Some((_, attr)) = map else {
                        return Err(Reject::acces(pc, "invalid map_ptr to access map->key"));
                    };
                    let size = if *kind == ArgKind::PtrToMapKey {
                        attr.key_size
                    } else {
                        attr.value_size
                    };
                    self.check_helper_mem(st, pc, r, size as usize)?;
                }
            }
        }
        if let Some((_, attr)) = map {
            let t = attr.map_type;
            let ok = match t {
                MapType::ProgArray => id == func::TAIL_CALL,
                // Socket maps hand out sockets, which this verifier does not model yet.
                MapType::Sockmap | MapType::Sockhash => id == func::MAP_DELETE_ELEM,
                _ => id != func::TAIL_CALL,
            };
            if !ok {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!("cannot pass map_type {} into func {name}#{id}", t as u32),
                ));
            }
        }
        for r in 1..=5 {
            *st.reg_mut(r) = Reg::NOT_INIT;
        }
        *st.reg_mut(0) = match proto.ret {
            RetKind::Integer => Reg::scalar(Scalar::UNKNOWN),
            RetKind::Void => Reg::NOT_INIT,
            RetKind::PtrToMapValueOrNull => {
                let Some((handle, _)) = map else {
                    return Err(Reject::new(
                        Errno::EINVAL,
                        pc,
                        format_args!("kernel subsystem misconfigured func {name}#{id}"),
                    ));
                };
                let mut r = Reg::ptr(RegType::PtrToMapValueOrNull, 0);
                r.map = handle;
                r.id = self.new_id();
                r
            }
        };
        Ok(())
    }

    /// `exit`: from a subprogram back to its caller, or the end of the path.
    pub(super) fn check_exit(&mut self, st: &mut VState, pc: usize) -> Result<Next, Reject> {
        let r0 = self.read(st, pc, 0)?;
        if st.frames.len() > 1 {
            let callee = st.frames.len() as u8 - 1;
            if r0.ty == (RegType::PtrToStack { frame: callee }) {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    "cannot return stack pointer to the caller",
                ));
            }
            let f = st.frames.pop().expect("more than one frame");
            forget_frame(st, callee);
            let caller = st.cur_mut();
            caller.regs[0] = r0;
            for r in 1..=5 {
                caller.regs[r] = Reg::NOT_INIT;
            }
            let site = f.callsite.expect("a callee frame has a call site");
            return Ok(Next::Goto(site + 1));
        }
        if r0.ty.is_pointer() && !self.env.privileged {
            return Err(Reject::acces(pc, "R0 leaks addr as return value"));
        }
        Ok(Next::End)
    }
}

/// After frame `gone` returned, pointers into its stack are dead: registers become
/// uninitialized and spill slots unwritten.
fn forget_frame(st: &mut VState, gone: u8) {
    let dead = |r: &Reg| matches!(r.ty, RegType::PtrToStack { frame } if frame >= gone);
    for fr in &mut st.frames {
        for r in fr.regs.iter_mut() {
            if dead(r) {
                *r = Reg::NOT_INIT;
            }
        }
        for s in fr.stack.iter_mut() {
            if matches!(s, Slot::Spill(r) if dead(r)) {
                *s = Slot::Bytes([ByteKind::Invalid; 8]);
            }
        }
    }
}
