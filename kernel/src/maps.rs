//! Map type implementations, one file each (Linux `kernel/bpf/arraymap.c`, `hashtab.c`); the
//! socket maps live with the sockets, in [`crate::net::sockmap`].

mod array;
mod hash;
mod percpu_array;
mod prog_array;
mod storage;

pub(crate) use crate::net::sockmap::SockMap;
pub use array::ArrayLayout;
pub(crate) use array::ArrayMap;
pub(crate) use hash::HashMap;
pub(crate) use percpu_array::PercpuArrayMap;
pub use prog_array::{PokedSlots, ProgArray, TailCallTarget};
pub(crate) use prog_array::{track_pokes, untrack_pokes};
