//! Object ids (Linux `prog_idr`, `map_idr`, `link_idr` in `kernel/bpf/syscall.c`).
//!
//! Ids start at 1 and only grow; they are what `obj_get_info` and queries report. The counters
//! are plain `core` atomics (not the loom facade): they are statics, and no protocol depends on
//! their ordering.

use core::sync::atomic::{AtomicU32, Ordering};

static NEXT_PROG_ID: AtomicU32 = AtomicU32::new(1);
static NEXT_MAP_ID: AtomicU32 = AtomicU32::new(1);
static NEXT_LINK_ID: AtomicU32 = AtomicU32::new(1);

fn next(counter: &AtomicU32) -> u32 {
    // Skip 0 on wrap-around: 0 means "no object" in every uapi that carries an id.
    loop {
        let id = counter.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}

/// A new program id.
pub fn next_prog_id() -> u32 {
    next(&NEXT_PROG_ID)
}

/// A new map id.
pub fn next_map_id() -> u32 {
    next(&NEXT_MAP_ID)
}

/// A new link id.
pub fn next_link_id() -> u32 {
    next(&NEXT_LINK_ID)
}
