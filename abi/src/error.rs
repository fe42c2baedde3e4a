//! Stable numeric error codes.
//!
//! A system call returns a signed machine word: a value `>= 0` is its result,
//! a value `< 0` is `-(error code)`. Codes are never reused or renumbered.

/// Why a system call failed. The discriminant is the stable code.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The system-call number does not exist.
    NoSuchSyscall = 1,
    /// An argument is out of its documented range (flags, sizes, numbers).
    InvalidArgument = 2,
    /// A user pointer does not point into readable/writable user memory.
    BadAddress = 3,
    /// A handle does not name a live attachment on the caller's bus.
    BadHandle = 4,
    /// The handle lacks a right the operation needs.
    AccessDenied = 5,
    /// The caller's frame reserve (or the kernel) has no memory left.
    OutOfMemory = 6,
    /// The named object (device, child, module, page) does not exist.
    NotFound = 7,
    /// The object is in use in a way that forbids the operation.
    Busy = 8,
    /// The name or resource is already taken.
    AlreadyExists = 9,
    /// The device's server exited or destroyed it.
    DeviceGone = 10,
    /// The operation would block and the caller asked not to.
    WouldBlock = 11,
    /// `wait_child` was called by a process with no children.
    NoChildren = 12,
    /// A table or limit is full (bus slots, clients, exports, ...).
    LimitReached = 13,
    /// An executable image is malformed.
    BadImage = 14,
    /// The operation is valid but this device does not support it.
    NotSupported = 15,
    /// The hardware behind a device failed the operation: a disk reported
    /// an I/O error, or stopped answering and was reset. Never made by the
    /// kernel; drivers' servers report it (`abi::disk`).
    IoError = 16,
    /// What the request waited for did not happen in time (a ping's reply,
    /// a connection). Never made by the kernel; servers report it
    /// (`abi::net`).
    TimedOut = 17,
    /// The peer refused the connection or ended it abruptly (a TCP reset).
    /// Never made by the kernel (`abi::net`).
    ConnectionReset = 18,
}

impl Error {
    /// Every error, in code order (used by tests and tools).
    pub const ALL: [Error; 18] = [
        Error::NoSuchSyscall,
        Error::InvalidArgument,
        Error::BadAddress,
        Error::BadHandle,
        Error::AccessDenied,
        Error::OutOfMemory,
        Error::NotFound,
        Error::Busy,
        Error::AlreadyExists,
        Error::DeviceGone,
        Error::WouldBlock,
        Error::NoChildren,
        Error::LimitReached,
        Error::BadImage,
        Error::NotSupported,
        Error::IoError,
        Error::TimedOut,
        Error::ConnectionReset,
    ];

    /// The stable numeric code (always positive).
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The error for a stable code, if it is one.
    pub const fn from_code(code: u32) -> Option<Error> {
        if code >= 1 && code as usize <= Self::ALL.len() {
            Some(Self::ALL[code as usize - 1])
        } else {
            None
        }
    }

    /// The raw system-call return value that carries this error.
    pub const fn to_ret(self) -> isize {
        -(self as u32 as isize)
    }

    /// Decodes a raw system-call return value (inlined: it sits on every
    /// system call's return path).
    #[inline]
    pub const fn decode(ret: isize) -> Result<usize, Error> {
        if ret >= 0 {
            Ok(ret as usize)
        } else {
            match ret.checked_neg() {
                Some(code) if code <= u32::MAX as isize => match Error::from_code(code as u32) {
                    Some(e) => Err(e),
                    None => Err(Error::InvalidArgument),
                },
                _ => Err(Error::InvalidArgument),
            }
        }
    }

    /// A short, stable name (the variant name).
    pub const fn name(self) -> &'static str {
        match self {
            Error::NoSuchSyscall => "NoSuchSyscall",
            Error::InvalidArgument => "InvalidArgument",
            Error::BadAddress => "BadAddress",
            Error::BadHandle => "BadHandle",
            Error::AccessDenied => "AccessDenied",
            Error::OutOfMemory => "OutOfMemory",
            Error::NotFound => "NotFound",
            Error::Busy => "Busy",
            Error::AlreadyExists => "AlreadyExists",
            Error::DeviceGone => "DeviceGone",
            Error::WouldBlock => "WouldBlock",
            Error::NoChildren => "NoChildren",
            Error::LimitReached => "LimitReached",
            Error::BadImage => "BadImage",
            Error::NotSupported => "NotSupported",
            Error::IoError => "IoError",
            Error::TimedOut => "TimedOut",
            Error::ConnectionReset => "ConnectionReset",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_round_trip() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.code() as usize, i + 1);
            assert_eq!(Error::from_code(e.code()), Some(*e));
            assert_eq!(Error::decode(e.to_ret()), Err(*e));
        }
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Error::from_code(Error::ALL.len() as u32 + 1), None);
    }

    #[test]
    fn decode_results() {
        assert_eq!(Error::decode(0), Ok(0));
        assert_eq!(Error::decode(isize::MAX), Ok(isize::MAX as usize));
        assert_eq!(Error::decode(isize::MIN), Err(Error::InvalidArgument));
        assert_eq!(Error::decode(-9999), Err(Error::InvalidArgument));
    }

    #[test]
    fn pinned_codes() {
        // These values are the ABI: changing one breaks every compiled program.
        assert_eq!(Error::NoSuchSyscall.code(), 1);
        assert_eq!(Error::BadAddress.code(), 3);
        assert_eq!(Error::OutOfMemory.code(), 6);
        assert_eq!(Error::DeviceGone.code(), 10);
        assert_eq!(Error::NotSupported.code(), 15);
        assert_eq!(Error::IoError.code(), 16);
    }
}
