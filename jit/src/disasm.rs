//! Disassembly of JIT images with iced-x86 (feature `disasm`), for `kbpf prog dump jited` —
//! what `bpftool prog dump jited` prints in Linux, each BPF instruction's code under its index.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};

/// One line per x86 instruction, with a `; insn N` line where BPF instruction N's code begins.
///
/// `offsets[n]` is where slot `n`'s code starts (from [`crate::emit`]); `base` is the address
/// of byte 0, which branch and call targets are shown from. Each line starts with the offset
/// into `code`.
pub fn disassemble(code: &[u8], offsets: &[u32], base: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut text = String::new();
    let mut insn = Instruction::default();
    let mut next_bpf = 0;
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        let at = (insn.ip() - base) as u32;
        while next_bpf < offsets.len() && offsets[next_bpf] <= at {
            // Slots that emit no code of their own (an ld_imm64's second half) share the next
            // instruction's offset; the last slot at an offset is the one whose code starts here.
            let last_here = offsets.get(next_bpf + 1) != Some(&at);
            if offsets[next_bpf] == at && last_here {
                out.push(format!("; insn {next_bpf}"));
            }
            next_bpf += 1;
        }
        text.clear();
        formatter.format(&insn, &mut text);
        let start = at as usize;
        let bytes: Vec<String> = code[start..start + insn.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(format!("{:>6x}:  {:<30} {}", at, bytes.join(" "), text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kbpf::insn::{exit, mov64_imm};
    use kbpf::uapi::ProgType;

    #[test]
    fn marks_each_bpf_instruction() {
        let (code, offsets) =
            crate::emit(&[mov64_imm(0, 42), exit()], ProgType::RawBuffer).unwrap();
        let lines = disassemble(&code, &offsets, 0);
        let marks: Vec<&String> = lines.iter().filter(|l| l.starts_with("; insn")).collect();
        assert_eq!(marks.len(), 2, "{lines:#?}");
        let after_first = lines.iter().position(|l| l == "; insn 0").unwrap() + 1;
        assert!(lines[after_first].ends_with("mov eax,2Ah"), "{lines:#?}");
        assert!(lines.iter().any(|l| l.ends_with("ret")), "{lines:#?}");
    }
}
