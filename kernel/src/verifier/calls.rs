//! Calls and exits: helper calls checked against their prototype, BPF-to-BPF calls with new
//! frames, and `exit` (`check_helper_call`, `check_func_arg`,
//! `check_map_func_compatibility`, `check_func_call`, `prepare_func_exit`,
//! `check_return_code` of `kernel/bpf/verifier.c`, whose ranges are in [`super::retcode`]).
//!
//! Helpers that acquire (`bpf_sk_lookup_tcp`) or release (`bpf_sk_release`) references and
//! kfunc calls lean on [`super::refs`] and [`super::kfunc`].
//!
//! Each helper call taking a map records, over every path, which map its R1 held
//! ([`CallMap`], the kernel's `bpf_insn_aux_data.map_ptr_state` kept by
//! `record_func_map`), for the load's fix-ups ([`super::fixups`]); a `bpf_tail_call` also
//! records its key ([`CallKey`], `map_key_state` kept by `record_func_key`). The load writes
//! both into the tail-call instruction ([`crate::insn::TailCallAux`]), so the engines run a
//! verified site without re-checking the map and jump straight to a constant slot.

use super::args::{MemArg, MemSize, check_ctx_unmodified, released_ref};
use super::bounds::Scalar;
use super::explore::{Explorer, Next};
use super::log::Reject;
use super::map_key::{can_elide_value_nullness, key_in_range};
use super::state::{Frame, Reg, RegType, Slot, VState};
use crate::Errno;
use crate::helpers::{ArgKind, FUNC_MAX_ID, HelperProto, RetKind, func_id_name, func_proto};
use crate::insn::Call;
use crate::map::MapAttr;
use crate::uapi::limits::MAX_CALL_FRAMES;
use crate::uapi::{MapType, func};

/// The map a helper call's R1 held, over every path that reached the call
/// (`bpf_map_ptr_state`): none seen yet, always the same map handle, or different maps on
/// different paths (`BPF_MAP_PTR_POISON`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallMap {
    /// No path reached the call with a map in R1 (or the helper takes no map).
    #[default]
    None,
    /// Every path passed this map handle (the `ld_imm64` immediate).
    Map(u32),
    /// Paths passed different maps: the call cannot be specialised (`bpf_map_ptr_poisoned`).
    Poisoned,
}

impl CallMap {
    /// This record after one more path passed map handle `h` (`record_func_map`).
    pub fn merge(self, h: u32) -> CallMap {
        match self {
            CallMap::None => CallMap::Map(h),
            CallMap::Map(m) if m == h => self,
            _ => CallMap::Poisoned,
        }
    }
}

/// The key a `bpf_tail_call`'s R3 held, over every path that reached the call
/// (`bpf_map_key_state`): none seen yet, always the same constant below the prog_array's
/// `max_entries`, or anything else (`BPF_MAP_KEY_POISON`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallKey {
    /// No path reached the call yet (or it is no tail call).
    #[default]
    None,
    /// Every path passed this key, in range.
    Key(u32),
    /// A path passed a key that is not a constant, out of range, or another constant.
    Poisoned,
}

impl CallKey {
    /// This record after one more path passed `key` (`None`: not a constant in range;
    /// `record_func_key`).
    pub fn merge(self, key: Option<u32>) -> CallKey {
        match (self, key) {
            (CallKey::None, Some(k)) => CallKey::Key(k),
            (CallKey::Key(a), Some(k)) if a == k => self,
            _ => CallKey::Poisoned,
        }
    }
}

/// What the argument checks of one helper call found (`struct bpf_call_arg_meta`).
#[derive(Default)]
struct CallMeta {
    /// The map argument: its handle and attributes.
    map: Option<(u32, MapAttr)>,
    /// The reference a release argument gives back.
    release: Option<u32>,
    /// The key argument's value, when it is known and the map is an array
    /// (`const_map_key`).
    const_key: Option<u64>,
}

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
                let Some(proto) = func_proto(self.env.prog_type, id) else {
                    let name = func_id_name(id);
                    return Err(if (0..FUNC_MAX_ID).contains(&id) {
                        Reject::new(
                            Errno::EINVAL,
                            pc,
                            format_args!("program of this type cannot use helper {name}#{id}"),
                        )
                    } else {
                        Reject::new(Errno::EINVAL, pc, format_args!("invalid func {name}#{id}"))
                    });
                };
                let callback = self.callback_state(st, pc)?;
                self.check_helper(st, pc, proto)?;
                Ok(match callback {
                    Some((start, cb)) => Next::Fork(pc + 1, start, cb),
                    None => Next::Goto(pc + 1),
                })
            }
            Call::Local(imm) => {
                let depth = new_frame_depth(st, pc)?;
                let target = (pc as i64 + 1 + imm as i64) as usize;
                let mut f = Frame::new(depth as u8, self.cfg.subprog_of(target), Some(pc));
                f.regs[1..=5].copy_from_slice(&st.cur().regs[1..=5]);
                st.frames.push(f);
                Ok(Next::Goto(target))
            }
            Call::Kfunc(id) => {
                self.check_kfunc_call(st, pc, id)?;
                Ok(Next::Goto(pc + 1))
            }
            Call::Reg(_) => Err(Reject::new(Errno::EINVAL, pc, "unknown opcode 8d")),
        }
    }

    /// A helper call against its prototype (`check_helper_call`): the arguments, a release,
    /// the map compatibility, then R0.
    fn check_helper(
        &mut self,
        st: &mut VState,
        pc: usize,
        proto: &HelperProto,
    ) -> Result<(), Reject> {
        let (name, id) = (proto.name, proto.id);
        if id == func::TAIL_CALL {
            self.check_reference_leak(st, pc, "tail_call")?;
        }
        let meta = self.check_helper_args(st, pc, proto)?;
        if let Some(ref_id) = meta.release {
            let what = alloc::format!("bpf_{name}#{id}");
            self.release_reference(st, pc, ref_id, &what)?;
        }
        if let Some((_, attr)) = meta.map {
            self.check_map_func_compatibility(pc, attr.map_type, id)?;
            if id == func::TAIL_CALL {
                // R3 is precise (every helper argument is, see `needs_before`), so no path with
                // another key is pruned into this one.
                let r3 = st.reg(3);
                let key = (r3.ty == RegType::Scalar)
                    .then(|| r3.var.as_const())
                    .flatten()
                    .filter(|&k| k < attr.max_entries as u64);
                if let Some(rec) = self.call_key.get_mut(pc) {
                    *rec = rec.merge(key.map(|k| k as u32));
                }
            }
        }
        let r0 = self.helper_ret(st, pc, proto, &meta)?;
        self.finish_call(st, r0);
        self.clear_pkt_pointers_after(st, id);
        Ok(())
    }

    /// Checks each argument against its kind (`check_func_arg`).
    fn check_helper_args(
        &mut self,
        st: &mut VState,
        pc: usize,
        proto: &HelperProto,
    ) -> Result<CallMeta, Reject> {
        let mut meta = CallMeta::default();
        for (i, kind) in proto.args.iter().enumerate() {
            let r = i as u8 + 1;
            if *kind == ArgKind::None {
                continue;
            }
            let reg = self.read(st, pc, r)?;
            // A packet pointer goes only to a helper that may read the packet
            // (`check_func_arg`: `may_access_direct_pkt_data` with the prototype's
            // `pkt_access`), whatever the argument's kind.
            if *kind != ArgKind::Anything
                && matches!(reg.ty, RegType::PtrToPacket | RegType::PtrToPacketMeta)
                && !crate::helpers::pkt_access(proto.id)
            {
                return Err(Reject::acces(
                    pc,
                    "helper access to the packet is not allowed",
                ));
            }
            let expect = |want: &str| {
                Err(Reject::acces(
                    pc,
                    format_args!("R{r} type={} expected={want}", reg.ty.name()),
                ))
            };
            let mem = |regno, size, uninit| MemArg {
                regno,
                size,
                uninit,
                null_arg: None,
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
                    check_ctx_unmodified(pc, r, &reg)?;
                }
                ArgKind::ConstMapPtr => {
                    if reg.ty != RegType::ConstPtrToMap {
                        return expect("map_ptr");
                    }
                    meta.map = Some((reg.map, self.map_attr(pc, reg.map)?));
                    if let Some(rec) = self.call_map.get_mut(pc) {
                        *rec = rec.merge(reg.map);
                    }
                }
                ArgKind::PtrToMapKey | ArgKind::PtrToMapValue => {
                    let Some((_, attr)) = meta.map else {
                        return Err(Reject::acces(pc, "invalid map_ptr to access map->key"));
                    };
                    // A socket map stores sockets: the value is one (`resolve_map_arg_type`).
                    if *kind == ArgKind::PtrToMapValue
                        && matches!(attr.map_type, MapType::Sockmap | MapType::Sockhash)
                    {
                        if !reg.ty.is_sk_pointer() {
                            return expect(
                                "sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_",
                            );
                        }
                        continue;
                    }
                    let size = if *kind == ArgKind::PtrToMapKey {
                        attr.key_size
                    } else {
                        attr.value_size
                    };
                    self.check_mem_arg(st, pc, mem(r, MemSize::Fixed(size as usize), false))?;
                    if *kind == ArgKind::PtrToMapKey && can_elide_value_nullness(attr.map_type) {
                        meta.const_key = self.constant_map_key(st, &reg, size);
                    }
                }
                ArgKind::PtrToMem | ArgKind::PtrToUninitMem => {
                    // Checked with the size argument that follows.
                }
                ArgKind::PtrToMemOrNull => self.check_mem_or_null_arg(pc, r, &reg)?,
                ArgKind::ConstSizeOrZero if proto.args[i - 1] != ArgKind::PtrToMemOrNull => {
                    // A pointer that may not be NULL, to as many bytes as this says, maybe 0.
                    let size = MemSize::Reg {
                        regno: r,
                        zero_ok: true,
                    };
                    self.check_mem_arg(st, pc, mem(r - 1, size, false))?;
                }
                ArgKind::ConstSizeOrZero => self.check_size_or_zero_arg(st, pc, r)?,
                ArgKind::PtrToFunc | ArgKind::PtrToStackOrNull => {
                    self.check_callback_arg(st, pc, r, *kind)?;
                }
                ArgKind::ConstSize => {
                    let uninit = proto.args[i - 1] == ArgKind::PtrToUninitMem;
                    let size = MemSize::Reg {
                        regno: r,
                        zero_ok: false,
                    };
                    self.check_mem_arg(st, pc, mem(r - 1, size, uninit))?;
                }
                ArgKind::PtrToSockCommon { release: rel } => {
                    if !reg.ty.is_sk_pointer() {
                        return expect("sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_");
                    }
                    if *rel {
                        meta.release = Some(released_ref(pc, r, &reg)?);
                    }
                }
                ArgKind::PtrToSocketOrNull => {
                    let null = reg.ty == RegType::Scalar && reg.var.as_const() == Some(0);
                    if !null && !matches!(reg.ty, RegType::PtrToSocket | RegType::PtrToSocketOrNull)
                    {
                        return expect("sock_or_null");
                    }
                }
            }
        }
        Ok(meta)
    }

    /// What R0 holds after the helper `proto` returns (`check_helper_call`'s return types).
    fn helper_ret(
        &mut self,
        st: &mut VState,
        pc: usize,
        proto: &HelperProto,
        meta: &CallMeta,
    ) -> Result<Reg, Reject> {
        let (name, id) = (proto.name, proto.id);
        let map = meta.map;
        // A lookup in a socket map hands out the socket, referenced (`is_acquire_function`).
        let sock_lookup = id == func::MAP_LOOKUP_ELEM
            && map.is_some_and(|(_, a)| matches!(a.map_type, MapType::Sockmap | MapType::Sockhash));
        Ok(match proto.ret {
            RetKind::Integer => Reg::scalar(Scalar::UNKNOWN),
            RetKind::Void => Reg::NOT_INIT,
            RetKind::PtrToMapValueOrNull if sock_lookup => {
                self.ret_pointer(st, pc, RegType::PtrToSocketOrNull, true)
            }
            RetKind::PtrToMapValueOrNull => {
                let Some((handle, attr)) = map else {
                    return Err(Reject::new(
                        Errno::EINVAL,
                        pc,
                        format_args!("kernel subsystem misconfigured func {name}#{id}"),
                    ));
                };
                // An array lookup with a key known in range cannot fail.
                let sure = id == func::MAP_LOOKUP_ELEM && key_in_range(&attr, meta.const_key);
                let ty = if sure {
                    RegType::PtrToMapValue
                } else {
                    RegType::PtrToMapValueOrNull
                };
                let mut r = self.ret_pointer(st, pc, ty, false);
                r.map = handle;
                r
            }
            RetKind::PtrToSocketOrNull => {
                self.ret_pointer(st, pc, RegType::PtrToSocketOrNull, proto.acquire)
            }
            RetKind::PtrToSockCommonOrNull => {
                self.ret_pointer(st, pc, RegType::PtrToSockCommonOrNull, proto.acquire)
            }
        })
    }

    /// Whether helper `id` may take a map of type `t` (`check_map_func_compatibility`, both
    /// directions, for the helpers kbpf knows): a prog_array only `bpf_tail_call`, which takes
    /// nothing else; a socket map a lookup, and an update or delete from the program types
    /// that cannot hold a locked socket (`may_update_sockmap`).
    fn check_map_func_compatibility(&self, pc: usize, t: MapType, id: i32) -> Result<(), Reject> {
        use crate::uapi::ProgType::*;
        let mut why = "";
        let ok = match t {
            MapType::ProgArray => id == func::TAIL_CALL,
            MapType::Sockmap | MapType::Sockhash => match id {
                func::MAP_LOOKUP_ELEM | func::SK_SELECT_REUSEPORT => true,
                func::MAP_UPDATE_ELEM | func::MAP_DELETE_ELEM => {
                    let may = matches!(
                        self.env.prog_type,
                        SocketFilter | SchedCls | SchedAct | Xdp | SkLookup
                    );
                    if !may {
                        why = "cannot update sockmap in this context\n";
                    }
                    may
                }
                _ => false,
            },
            _ => !matches!(id, func::TAIL_CALL | func::SK_SELECT_REUSEPORT),
        };
        if ok {
            return Ok(());
        }
        Err(Reject::new(
            Errno::EINVAL,
            pc,
            format_args!(
                "{why}cannot pass map_type {} into func {}#{id}",
                t as u32,
                func_id_name(id)
            ),
        ))
    }

    /// `exit`: from a subprogram back to its caller, or the end of the path.
    pub(super) fn check_exit(&mut self, st: &mut VState, pc: usize) -> Result<Next, Reject> {
        if let Some(next) = self.callback_exit(st, pc)? {
            return Ok(next);
        }
        if st.frames.len() == 1 {
            self.check_reference_leak(st, pc, "BPF_EXIT instruction in main prog")?;
        }
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
        self.check_return_range(pc, &r0)?;
        Ok(Next::End)
    }
}

/// After frame `gone` returned, pointers into its stack are dead: registers become
/// uninitialized and spill slots unwritten.
pub(super) fn forget_frame(st: &mut VState, gone: u8) {
    let dead = |r: &Reg| matches!(r.ty, RegType::PtrToStack { frame } if frame >= gone);
    for fr in &mut st.frames {
        for r in fr.regs.iter_mut() {
            if dead(r) {
                *r = Reg::NOT_INIT;
            }
        }
        for s in fr.stack.iter_mut() {
            if s.spill().is_some_and(dead) {
                *s = Slot::INVALID;
            }
        }
    }
}

/// The number of the frame a call pushes; `E2BIG` past `MAX_CALL_FRAMES`.
pub(super) fn new_frame_depth(st: &VState, pc: usize) -> Result<usize, Reject> {
    let depth = st.frames.len();
    if depth >= MAX_CALL_FRAMES {
        return Err(Reject::new(
            Errno::E2BIG,
            pc,
            format_args!("the call stack of {} frames is too deep !", depth + 1),
        ));
    }
    Ok(depth)
}
