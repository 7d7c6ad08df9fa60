//! Errors as the kernel reports them: an errno by name.
//!
//! Mirrors `include/uapi/asm-generic/errno-base.h`, `errno.h` and the kernel-internal
//! `include/linux/errno.h` (for `ENOTSUPP`). Every control-path API returns [`Result`]; a failed
//! call leaves every object as it was.

use core::fmt;

macro_rules! declare_errno {
    ($($name:ident = $num:literal, $doc:literal;)*) => {
        /// A kernel errno value (positive, as in `errno.h`), printed by its symbolic name.
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(transparent)]
        pub struct Errno(u16);

        impl Errno {
            $(
                #[doc = $doc]
                pub const $name: Errno = Errno($num);
            )*

            /// The symbolic name (`"EINVAL"`), or `None` for a number this table does not know.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($num => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// Looks an errno up by its symbolic name.
            pub fn from_name(name: &str) -> Option<Errno> {
                match name {
                    $(stringify!($name) => Some(Errno::$name),)*
                    _ => None,
                }
            }
        }
    };
}

declare_errno! {
    EPERM = 1, "Operation not permitted.";
    ENOENT = 2, "No such file or directory (no such element).";
    ESRCH = 3, "No such process.";
    EINTR = 4, "Interrupted system call.";
    EIO = 5, "I/O error.";
    E2BIG = 7, "Argument list too long (index or size out of range).";
    EBADF = 9, "Bad file number (no such handle).";
    EAGAIN = 11, "Try again.";
    ENOMEM = 12, "Out of memory.";
    EACCES = 13, "Permission denied.";
    EFAULT = 14, "Bad address.";
    EBUSY = 16, "Device or resource busy.";
    EEXIST = 17, "File exists (element exists).";
    ENODEV = 19, "No such device.";
    EINVAL = 22, "Invalid argument.";
    ENOSPC = 28, "No space left on device (buffer too small).";
    ERANGE = 34, "Math result not representable (out of range).";
    ETIME = 62, "Timer expired.";
    ENONET = 64, "Machine is not on the network.";
    ENOLINK = 67, "Link has been severed.";
    EPROTO = 71, "Protocol error.";
    EBADMSG = 74, "Not a data message (a test run's checksum does not match its packet).";
    EOVERFLOW = 75, "Value too large for defined data type.";
    EBADFD = 77, "File descriptor in bad state.";
    ENOTSOCK = 88, "Socket operation on non-socket.";
    EDESTADDRREQ = 89, "Destination address required.";
    EPROTOTYPE = 91, "Protocol wrong type for socket.";
    ESOCKTNOSUPPORT = 94, "Socket type not supported.";
    EOPNOTSUPP = 95, "Operation not supported on transport endpoint.";
    EAFNOSUPPORT = 97, "Address family not supported by protocol.";
    EADDRINUSE = 98, "Address already in use.";
    EADDRNOTAVAIL = 99, "Cannot assign requested address.";
    ENETUNREACH = 101, "Network is unreachable.";
    EISCONN = 106, "Transport endpoint is already connected.";
    ENOTCONN = 107, "Transport endpoint is not connected.";
    ECONNREFUSED = 111, "Connection refused.";
    ESTALE = 116, "Stale file handle (revision mismatch).";
    ENOTSUPP = 524, "Operation is not supported (kernel-internal).";
}

impl Errno {
    /// The positive errno number.
    pub const fn to_errno(self) -> i32 {
        self.0 as i32
    }

    /// The errno for a positive or negative number, if the table knows it.
    pub const fn from_errno(num: i32) -> Option<Errno> {
        let abs = num.unsigned_abs();
        if abs == 0 || abs > u16::MAX as u32 {
            return None;
        }
        let e = Errno(abs as u16);
        if e.name().is_some() { Some(e) } else { None }
    }

    /// The negative value a kernel function returns (`-EINVAL`).
    pub const fn to_neg(self) -> i64 {
        -(self.0 as i64)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An errno is an error value (so `?` lifts it into `Box<dyn Error>` in a std host).
impl core::error::Error for Errno {}

impl From<core::num::TryFromIntError> for Errno {
    fn from(_: core::num::TryFromIntError) -> Self {
        Errno::EINVAL
    }
}

impl From<alloc::collections::TryReserveError> for Errno {
    fn from(_: alloc::collections::TryReserveError) -> Self {
        Errno::ENOMEM
    }
}

/// The result of a control-path operation.
pub type Result<T = ()> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn debug_prints_the_name() {
        assert_eq!(format!("{:?}", Errno::EINVAL), "EINVAL");
        assert_eq!(format!("{:?}", Errno::ENOTSUPP), "ENOTSUPP");
        assert_eq!(Errno::E2BIG.to_errno(), 7);
        assert_eq!(Errno::ESTALE.to_neg(), -116);
    }

    #[test]
    fn numbers_round_trip() {
        assert_eq!(Errno::from_errno(-22), Some(Errno::EINVAL));
        assert_eq!(Errno::from_errno(0), None);
        assert_eq!(Errno::from_errno(6), None);
        assert_eq!(Errno::from_name("ENOSPC"), Some(Errno::ENOSPC));
    }
}
