//! What a side-by-side figure depends on besides the code: the CPU, the host kernel's
//! Spectre v2 and SRSO mitigations (which decide whether its JIT'd indirect jumps go through a
//! retpoline and its returns through a return thunk) and whether its BPF JIT is on. Read from
//! `/proc` and `/sys` (`arch/x86/kernel/cpu/bugs.c` prints the mitigation lines); every
//! `scripts/compare-*` puts them in its JSON so a ratio is never read without them.

use std::fs;

/// The machine and host-kernel settings a comparison ran under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    /// `model name` of the first CPU in `/proc/cpuinfo`, with family/model/stepping.
    pub cpu: String,
    /// `uname -r`.
    pub kernel: String,
    /// `/sys/devices/system/cpu/vulnerabilities/spectre_v2` ("Mitigation: Retpolines; …").
    pub spectre_v2: String,
    /// `/sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow` (AMD's SRSO: "Safe
    /// RET" sends every kernel return through a thunk).
    pub srso: String,
    /// `net.core.bpf_jit_enable` (1: JIT on), or -1 when unreadable.
    pub jit_enable: i32,
    /// `net.core.bpf_jit_harden`, or -1 when unreadable.
    pub jit_harden: i32,
}

fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn read_int(path: &str) -> i32 {
    read_trim(path).parse().unwrap_or(-1)
}

/// The first value of `key` in `/proc/cpuinfo`-style text.
fn cpuinfo_field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim())
        })
        .unwrap_or("")
}

impl Machine {
    /// Reads the running machine's settings (empty strings where a file is missing).
    pub fn read() -> Machine {
        let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = format!(
            "{} (family {} model {} stepping {})",
            cpuinfo_field(&info, "model name"),
            cpuinfo_field(&info, "cpu family"),
            cpuinfo_field(&info, "model"),
            cpuinfo_field(&info, "stepping"),
        );
        let vuln = "/sys/devices/system/cpu/vulnerabilities";
        Machine {
            cpu,
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            spectre_v2: read_trim(&format!("{vuln}/spectre_v2")),
            srso: read_trim(&format!("{vuln}/spec_rstack_overflow")),
            jit_enable: read_int("/proc/sys/net/core/bpf_jit_enable"),
            jit_harden: read_int("/proc/sys/net/core/bpf_jit_harden"),
        }
    }

    /// Whether the host kernel's JIT'd indirect jumps and calls go through retpoline thunks.
    pub fn retpolines(&self) -> bool {
        self.spectre_v2.contains("Retpoline")
    }

    /// One line for a report's header.
    pub fn line(&self) -> String {
        format!(
            "machine: {}; Linux {}; spectre_v2: {}; srso: {}; bpf_jit_enable={} bpf_jit_harden={}",
            self.cpu,
            self.kernel,
            self.spectre_v2,
            if self.srso.is_empty() {
                "-"
            } else {
                &self.srso
            },
            self.jit_enable,
            self.jit_harden
        )
    }

    /// The settings as a JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu": self.cpu,
            "kernel": self.kernel,
            "spectre_v2": self.spectre_v2,
            "srso": self.srso,
            "bpf_jit_enable": self.jit_enable,
            "bpf_jit_harden": self.jit_harden,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_fields_are_the_first_match() {
        let t = "processor\t: 0\nmodel name\t: AMD EPYC\nmodel\t\t: 17\nmodel name\t: other\n";
        assert_eq!(cpuinfo_field(t, "model name"), "AMD EPYC");
        assert_eq!(cpuinfo_field(t, "model"), "17");
        assert_eq!(cpuinfo_field(t, "stepping"), "");
    }

    #[test]
    fn retpolines_come_from_the_spectre_v2_line() {
        let m = Machine {
            spectre_v2: "Mitigation: Retpolines; STIBP: disabled".into(),
            ..Default::default()
        };
        assert!(m.retpolines());
        let m = Machine {
            spectre_v2: "Mitigation: Enhanced / Automatic IBRS".into(),
            ..Default::default()
        };
        assert!(!m.retpolines());
    }
}
