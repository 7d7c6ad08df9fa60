//! kbpf-jit: the x86-64 JIT backend for kbpf (see the JIT issue).
#![no_std]
