//! Helper memory arguments that may be NULL when their size may be zero
//! (`ARG_PTR_TO_MEM | PTR_MAYBE_NULL` with `ARG_CONST_SIZE_OR_ZERO`, as `bpf_csum_diff` takes
//! them): `check_func_arg`'s `register_is_null` skip, `check_mem_size_reg` with
//! `zero_size_allowed` and `check_helper_mem_access`'s "zero-byte read from NULL" rule in
//! `kernel/bpf/verifier.c`.

use super::explore::Explorer;
use super::log::Reject;
use super::state::{Reg, RegType, VState};

fn is_null(r: &Reg) -> bool {
    r.ty == RegType::Scalar && r.var.as_const() == Some(0)
}

impl Explorer<'_> {
    /// The memory argument R`r`: NULL, or a pointer the size check that follows judges.
    pub(super) fn check_mem_or_null_arg(&self, pc: usize, r: u8, reg: &Reg) -> Result<(), Reject> {
        if reg.ty == RegType::Scalar && !is_null(reg) {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{r} type=scalar expected=fp, pkt, pkt_meta, map_key, map_value, mem"
                ),
            ));
        }
        Ok(())
    }

    /// The size argument R`r` of the memory argument before it: bounded, possibly 0; a NULL
    /// pointer only with size 0, a pointer for every size the register may hold.
    pub(super) fn check_size_or_zero_arg(
        &mut self,
        st: &mut VState,
        pc: usize,
        r: u8,
    ) -> Result<(), Reject> {
        let size = self.check_mem_size_reg(st, pc, r, true)? as usize;
        let p = *st.reg(r - 1);
        if size == 0 {
            return Ok(());
        }
        if is_null(&p) {
            return Err(Reject::acces(
                pc,
                format_args!("R{} type=scalar expected=fp", r - 1),
            ));
        }
        self.check_helper_mem(st, pc, r - 1, size)
    }
}
