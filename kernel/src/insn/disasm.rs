//! Disassembler into the conventional BPF assembly text (to be written).
