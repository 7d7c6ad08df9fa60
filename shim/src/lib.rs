//! kbpf-shim: the user-mode host for kbpf.
