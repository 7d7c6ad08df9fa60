//! Assembler for the conventional BPF assembly text (to be written).
