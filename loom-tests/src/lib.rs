//! Loom models of kbpf's lock-free protocols.
//!
//! The models live in `tests/*.rs`, each file entirely under `#![cfg(loom)]`, and exercise the
//! real `kbpf` code: under `--cfg loom` the crate's `sync` facade swaps `core` atomics, `Arc`,
//! the spin lock and the spin hint for loom's, so loom explores the interleavings and weak-memory
//! outcomes of the actual protocol (structured like crossbeam-epoch's `tests/loom.rs`).
//!
//! # Running
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p kbpf-loom --release
//! ```
//! Use a separate target directory (for example `CARGO_TARGET_DIR=target/loom`): `--cfg loom`
//! rebuilds every crate. Without the flag the test files compile to nothing.
//!
//! Each model fixes its own preemption bound with `loom::model::Builder` and keeps to at most
//! three threads, so the whole suite takes seconds. Loom's environment knobs still apply:
//! `LOOM_MAX_PREEMPTIONS` (overridden by the models' explicit bound), `LOOM_LOG=trace`,
//! `LOOM_LOCATION=1` and `LOOM_CHECKPOINT_FILE` to replay a failing interleaving.
//!
//! # What loom does not model (see `shared/research/jit-tailcall.md` §4.2)
//! SeqCst loads, stores and RMWs are treated as acquire/release (the RCU protocol therefore
//! relies only on `fence(SeqCst)`, which loom models); load buffering is not explored; at most
//! 7 stores per atomic are remembered. A passing model is evidence, not a proof.

#[cfg(loom)]
pub mod host;

/// A raw pointer that may cross threads in a model (the models own the synchronization).
#[derive(Debug)]
pub struct SendPtr<T>(pub *mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SendPtr<T> {}

// SAFETY: `SendPtr` only carries the address; every dereference in a model is guarded by the
// protocol under test, whose correctness is what the model checks.
unsafe impl<T> Send for SendPtr<T> {}
