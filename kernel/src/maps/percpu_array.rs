//! `BPF_MAP_TYPE_PERCPU_ARRAY` (Linux `kernel/bpf/arraymap.c`, percpu parts): one copy of every
//! value per CPU. Programs see their CPU's copy; user space reads and writes all copies at once,
//! each rounded up to 8 bytes (`round_up(value_size, 8) * num_possible_cpus()`).

use super::array::{check_array_update, update_found};
use super::storage::{Storage, round8};
use crate::map::{MapAttr, array_index};
use crate::uapi::UpdateFlags;
use crate::{Errno, Result, host};

/// A per-CPU array map. Storage is CPU-major: all of CPU 0's elements, then CPU 1's, so a
/// program's accesses stay on its own CPU's lines.
pub(crate) struct PercpuArrayMap {
    values: Storage,
    value_size: usize,
    max_entries: u32,
    nr_cpus: usize,
}

impl PercpuArrayMap {
    pub(crate) fn new(attr: &MapAttr, nr_cpus: usize) -> Result<PercpuArrayMap> {
        if attr.key_size != 4 || attr.value_size == 0 {
            return Err(Errno::EINVAL);
        }
        let count = (attr.max_entries as usize)
            .checked_mul(nr_cpus)
            .ok_or(Errno::E2BIG)?;
        Ok(PercpuArrayMap {
            values: Storage::new(attr.value_size as usize, count)?,
            value_size: attr.value_size as usize,
            max_entries: attr.max_entries,
            nr_cpus,
        })
    }

    pub(crate) fn user_value_size(&self) -> usize {
        round8(self.value_size) * self.nr_cpus
    }

    fn slot(&self, cpu: usize, i: usize) -> usize {
        cpu * self.max_entries as usize + i
    }

    pub(crate) fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result {
        let i = array_index(key)?;
        if i >= self.max_entries {
            return Err(Errno::ENOENT);
        }
        let stride = round8(self.value_size);
        for (cpu, chunk) in value.chunks_exact_mut(stride).enumerate() {
            self.values.read(self.slot(cpu, i as usize), chunk);
        }
        Ok(())
    }

    pub(crate) fn update(&self, key: &[u8], value: &[u8], flags: UpdateFlags) -> Result {
        check_array_update(flags)?;
        let i = array_index(key)?;
        if i >= self.max_entries {
            return Err(Errno::E2BIG);
        }
        let stride = round8(self.value_size);
        for (cpu, chunk) in value.chunks_exact(stride).enumerate() {
            self.values.write(self.slot(cpu, i as usize), chunk);
        }
        Ok(())
    }

    /// # Safety
    /// `key` points to 4 readable bytes; the caller holds its CPU.
    #[inline(never)]
    pub(crate) unsafe fn lookup_raw(&self, key: *const u8) -> *mut u8 {
        // SAFETY: caller contract.
        let i = unsafe { (key as *const u32).read_unaligned() };
        if i >= self.max_entries {
            return core::ptr::null_mut();
        }
        let h = host::get();
        // Nested enter: returns the CPU this thread already holds.
        let cpu = h.cpu_enter();
        h.cpu_exit(cpu);
        // SAFETY: `cpu < nr_cpus` and `i < max_entries`, so the slot is in bounds.
        unsafe {
            self.values
                .elem(self.slot(cpu.min(self.nr_cpus - 1), i as usize))
        }
    }

    /// # Safety
    /// `key`/`value` point to 4 and `value_size` readable bytes; the caller holds its CPU.
    pub(crate) unsafe fn update_raw(
        &self,
        key: *const u8,
        value: *const u8,
        flags: UpdateFlags,
    ) -> Result {
        // SAFETY: caller contract; a found element is this CPU's, `value_size` (rounded) bytes.
        unsafe { update_found(self.lookup_raw(key), value, self.value_size, flags) }
    }
}
