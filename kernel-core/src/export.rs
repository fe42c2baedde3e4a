//! Exported ranges: what a process has let a device reach of its memory,
//! as `[iova, iova + len)` ranges, and the three questions every list of
//! them is asked (is a new range free, which export starts here, does one
//! export cover an access).
//!
//! Rules: a range is never empty and never wraps (checked here, so each
//! list keeps only well-formed ranges); an access is allowed only inside
//! one export (two adjacent exports do not make one: each was wired and
//! is unwired on its own); lists hold a handful of entries, so a walk is
//! the whole cost.

use abi::Error;

/// One exported range: the process's pages `[iova, iova + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export {
    pub iova: u64,
    pub len: u64,
    /// Whether the device may write it (else it only reads).
    pub device_writes: bool,
}

impl Export {
    /// A new export of `[va, va + len)`, if `list` holds nothing that
    /// overlaps it: `InvalidArgument` for an empty or wrapping range,
    /// `AlreadyExists` for an overlap.
    pub fn new_in<'a>(
        list: impl IntoIterator<Item = &'a Export>,
        va: u64,
        len: u64,
        device_writes: bool,
    ) -> Result<Export, Error> {
        let end = va.checked_add(len).ok_or(Error::InvalidArgument)?;
        if len == 0 {
            return Err(Error::InvalidArgument);
        }
        if list.into_iter().any(|e| va < e.end() && e.iova < end) {
            return Err(Error::AlreadyExists);
        }
        Ok(Export {
            iova: va,
            len,
            device_writes,
        })
    }

    /// One past its last byte (never wraps: `new_in` checked).
    pub fn end(&self) -> u64 {
        self.iova + self.len
    }
}

/// Where in `list` the export starting at `iova` is: `NotFound` if none.
pub fn position<'a>(list: impl IntoIterator<Item = &'a Export>, iova: u64) -> Result<usize, Error> {
    list.into_iter()
        .position(|e| e.iova == iova)
        .ok_or(Error::NotFound)
}

/// Checks that `[iova, iova + len)` lies inside one export of `list`
/// (for the device to read): `InvalidArgument` if the range wraps,
/// `AccessDenied` if no export covers it.
pub fn check_covered<'a>(
    list: impl IntoIterator<Item = &'a Export>,
    iova: u64,
    len: u64,
) -> Result<(), Error> {
    check_access(list, iova, len, false)
}

/// `check_covered`, for the device to write: the export must also allow
/// it.
pub fn check_writable<'a>(
    list: impl IntoIterator<Item = &'a Export>,
    iova: u64,
    len: u64,
) -> Result<(), Error> {
    check_access(list, iova, len, true)
}

fn check_access<'a>(
    list: impl IntoIterator<Item = &'a Export>,
    iova: u64,
    len: u64,
    write: bool,
) -> Result<(), Error> {
    let end = iova.checked_add(len).ok_or(Error::InvalidArgument)?;
    let covers = |e: &Export| iova >= e.iova && end <= e.end() && (e.device_writes || !write);
    if list.into_iter().any(covers) {
        Ok(())
    } else {
        Err(Error::AccessDenied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: [Export; 2] = [
        Export {
            iova: 0x1000,
            len: 0x1000,
            device_writes: true,
        },
        Export {
            iova: 0x2000,
            len: 0x2000,
            device_writes: false,
        },
    ];

    #[test]
    fn new_ranges_must_be_free_non_empty_and_not_wrap() {
        assert_eq!(
            Export::new_in(&LIST, 0x4000, 0x1000, false),
            Ok(Export {
                iova: 0x4000,
                len: 0x1000,
                device_writes: false,
            })
        );
        assert_eq!(
            Export::new_in(&LIST, 0x0, 0x1000, true).map(|e| e.end()),
            Ok(0x1000)
        );
        assert_eq!(
            Export::new_in(&LIST, 0x3fff, 1, true),
            Err(Error::AlreadyExists)
        );
        assert_eq!(
            Export::new_in(&LIST, 0, 0x1001, true),
            Err(Error::AlreadyExists)
        );
        assert_eq!(
            Export::new_in(&LIST, 0x8000, 0, true),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Export::new_in(&LIST, u64::MAX, 2, true),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn an_access_must_lie_inside_one_export() {
        assert_eq!(check_covered(&LIST, 0x1000, 0x1000), Ok(()));
        assert_eq!(check_covered(&LIST, 0x3000, 0x1000), Ok(()));
        // Across the seam of two exports: not one range.
        assert_eq!(
            check_covered(&LIST, 0x1800, 0x1000),
            Err(Error::AccessDenied)
        );
        assert_eq!(check_covered(&LIST, 0x3fff, 2), Err(Error::AccessDenied));
        assert_eq!(
            check_covered(&LIST, u64::MAX, 2),
            Err(Error::InvalidArgument)
        );
        assert_eq!(check_covered(&[], 0, 1), Err(Error::AccessDenied));
    }

    #[test]
    fn a_write_needs_an_export_the_device_may_write() {
        assert_eq!(check_writable(&LIST, 0x1000, 0x1000), Ok(()));
        assert_eq!(check_covered(&LIST, 0x2000, 0x10), Ok(()));
        assert_eq!(
            check_writable(&LIST, 0x2000, 0x10),
            Err(Error::AccessDenied)
        );
        assert_eq!(
            check_writable(&LIST, u64::MAX, 2),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn exports_are_found_by_their_start_only() {
        assert_eq!(position(&LIST, 0x2000), Ok(1));
        assert_eq!(position(&LIST, 0x2001), Err(Error::NotFound));
    }
}
