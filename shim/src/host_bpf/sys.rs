//! The raw `bpf(2)` calls kbpf's host-kernel tools make (`kernel/bpf/syscall.c`), on zero-padded
//! `union bpf_attr` prefixes built word by word: no libbpf, no C headers.

use kbpf::insn::Insn;
use kbpf::map::MapAttr;

/// `BPF_MAP_CREATE`.
pub const BPF_MAP_CREATE: libc::c_long = 0;
/// `BPF_MAP_UPDATE_ELEM`.
pub const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
/// `BPF_MAP_DELETE_ELEM`.
pub const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
/// `BPF_PROG_LOAD`.
pub const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_PROG_TEST_RUN`.
pub const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// `BPF_OBJ_GET_INFO_BY_FD`.
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `bpf(2)` with a zero-padded `union bpf_attr` prefix; the result or the positive errno.
pub fn bpf(cmd: libc::c_long, attr: &mut [u64]) -> Result<i32, i32> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` prefix of `attr.len() * 8` bytes,
    // valid for the call; pointers inside it point to live buffers of the caller.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc as i32)
    }
}

/// Two `u32` attribute fields as the `u64` word they share (`lo` first in memory).
pub fn pack(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

/// A file descriptor closed on drop.
#[derive(Debug)]
pub struct OwnedFd(pub i32);

impl OwnedFd {
    /// Gives up ownership: the caller closes the descriptor.
    pub fn into_raw(self) -> i32 {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }
}

impl Drop for OwnedFd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe { libc::close(self.0) };
    }
}

/// `BPF_MAP_CREATE` (map_type | key_size, value_size | max_entries, map_flags).
pub fn map_create(m: &MapAttr) -> Result<OwnedFd, i32> {
    let mut attr = [0u64; 16];
    attr[0] = pack(m.map_type as u32, m.key_size);
    attr[1] = pack(m.value_size, m.max_entries);
    attr[2] = m.flags.bits() as u64;
    bpf(BPF_MAP_CREATE, &mut attr).map(OwnedFd)
}

/// `BPF_MAP_UPDATE_ELEM` of a `u32` key and value with `BPF_ANY`.
pub fn map_update_u32(map: &OwnedFd, key: u32, value: u32) -> Result<(), i32> {
    let (key, value) = (key, value);
    let mut attr = [0u64; 16];
    attr[0] = map.0 as u64;
    attr[1] = &key as *const u32 as u64;
    attr[2] = &value as *const u32 as u64;
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `BPF_MAP_DELETE_ELEM` of a `u32` key.
pub fn map_delete_u32(map: &OwnedFd, key: u32) -> Result<(), i32> {
    let mut attr = [0u64; 16];
    attr[0] = map.0 as u64;
    attr[1] = &key as *const u32 as u64;
    bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// `BPF_PROG_LOAD` of `insns` under the GPL; with `log`, the verifier log (level 1) lands in it.
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    expected_attach_type: u32,
    log: Option<&mut [u8]>,
) -> Result<OwnedFd, i32> {
    let license = c"GPL";
    // prog_type | insn_cnt, insns, license, log_level | log_size, log_buf, ...,
    // prog_ifindex | expected_attach_type.
    let mut attr = [0u64; 16];
    attr[0] = pack(prog_type, insns.len() as u32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    if let Some(log) = log {
        attr[3] = pack(1, log.len() as u32);
        attr[4] = log.as_mut_ptr() as u64;
    }
    attr[8] = pack(0, expected_attach_type);
    bpf(BPF_PROG_LOAD, &mut attr).map(OwnedFd)
}

/// What `BPF_PROG_TEST_RUN` reports.
#[derive(Clone, Copy, Debug)]
pub struct TestRunOut {
    /// The program's return value (low 32 bits).
    pub retval: u32,
    /// Kernel-measured ns per run.
    pub duration: u32,
}

/// `BPF_PROG_TEST_RUN` of `prog` on `data`, `repeat` times, no context.
pub fn test_run(prog: &OwnedFd, data: &mut [u8], repeat: u32) -> Result<TestRunOut, i32> {
    test_run_ctx(prog, data, None, repeat)
}

/// `BPF_PROG_TEST_RUN` of `prog` on `data` with `ctx_in` (no context out), `repeat` times.
pub fn test_run_ctx(
    prog: &OwnedFd,
    data: &mut [u8],
    ctx: Option<&[u8]>,
    repeat: u32,
) -> Result<TestRunOut, i32> {
    // prog_fd | retval, data_size_in | data_size_out, data_in, data_out, repeat | duration,
    // ctx_size_in | ctx_size_out, ctx_in, ctx_out.
    let mut attr = [0u64; 16];
    attr[0] = prog.0 as u64;
    attr[1] = pack(data.len() as u32, data.len() as u32);
    attr[2] = data.as_ptr() as u64;
    attr[3] = data.as_mut_ptr() as u64;
    attr[4] = repeat as u64;
    if let Some(ctx) = ctx {
        attr[5] = pack(ctx.len() as u32, 0);
        attr[6] = ctx.as_ptr() as u64;
    }
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(TestRunOut {
        retval: (attr[0] >> 32) as u32,
        duration: (attr[4] >> 32) as u32,
    })
}

/// What [`prog_info`] reads of `struct bpf_prog_info`.
#[derive(Clone, Debug, Default)]
pub struct ProgInfo {
    /// The kernel's program id.
    pub id: u32,
    /// Bytes of JIT'd code (0: the program runs in the kernel's interpreter).
    pub jited_len: u32,
    /// Bytes of xlated instructions.
    pub xlated_len: u32,
    /// The JIT'd code, when asked for.
    pub jited: Vec<u8>,
    /// The address of the JIT'd code (`jited_ksyms[0]`), when asked for.
    pub addr: u64,
}

/// `BPF_OBJ_GET_INFO_BY_FD` of a program: its sizes and, with `code`, its JIT'd bytes and
/// address (the address reads as 0 without `CAP_SYSLOG`-like privileges).
pub fn prog_info(prog: &OwnedFd, code: bool) -> Result<ProgInfo, i32> {
    // `struct bpf_prog_info` as u64 words: id at byte 4, jited_prog_len | xlated_prog_len at
    // word 2, jited_prog_insns word 3, nr_jited_ksyms word 13 (low), jited_ksyms word 14.
    let mut info = [0u64; 32];
    let mut img = Vec::new();
    let mut addr = 0u64;
    let query = |info: &mut [u64; 32]| {
        let mut attr = [0u64; 16];
        attr[0] = pack(prog.0 as u32, std::mem::size_of_val(info) as u32);
        attr[1] = info.as_mut_ptr() as u64;
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
    };
    query(&mut info)?;
    let jited_len = info[2] as u32;
    if code && jited_len > 0 {
        img = vec![0u8; jited_len as usize];
        info = [0u64; 32];
        info[2] = jited_len as u64;
        info[3] = img.as_mut_ptr() as u64;
        info[13] = 1;
        info[14] = &mut addr as *mut u64 as u64;
        query(&mut info)?;
    }
    Ok(ProgInfo {
        id: (info[0] >> 32) as u32,
        jited_len,
        xlated_len: (info[2] >> 32) as u32,
        jited: img,
        addr,
    })
}
