//! Helpers that change packet data invalidate every packet pointer the program holds
//! (`bpf_helper_changes_pkt_data` and `clear_all_pkt_pointers` → `mark_reg_invalid` in
//! `kernel/bpf/verifier.c`): after the call the program must load `data`/`data_end` again and
//! re-check its bounds. A pointer becomes uninitialized (unknown scalar under root's rules,
//! `allow_ptr_leaks`), in registers and stack spills of every frame.

use super::bounds::Scalar;
use super::explore::Explorer;
use super::pkt::is_pkt_pointer_any;
use super::state::{Reg, VState};
use crate::helpers::changes_pkt_data;

impl Explorer<'_> {
    /// After a call to helper `id`: drops the packet pointers if it changes packet data.
    pub(super) fn clear_pkt_pointers_after(&self, st: &mut VState, id: i32) {
        if !changes_pkt_data(id) {
            return;
        }
        let gone = if self.env.privileged {
            Reg::scalar(Scalar::UNKNOWN)
        } else {
            Reg::NOT_INIT
        };
        st.for_each_reg(|r| {
            if is_pkt_pointer_any(r.ty) {
                *r = gone;
            }
        });
    }
}
