//! Name scopes: which device names a process may attach (through a
//! registry handle with LOOKUP) or register (with `dev_create`).
//!
//! A process starts with the scope of its parent — init's is every name —
//! and `restrict_names` narrows it to a list. Rules: a scope only ever
//! narrows (a list that names something outside the current scope is
//! refused whole, so a caller never believes it kept a name it did not
//! have); fork copies it and exec keeps it; a scope is a list of at most
//! [`NAME_SCOPE_MAX`] exact names, checked by plain comparison (no
//! prefixes, no patterns, nothing hashed), so what the manifest says is
//! exactly what the process gets.

use abi::Error;
use abi::bus::{DEVICE_NAME_MAX, NAME_LIST_MAX, NAME_SCOPE_MAX};
use arrayvec::{ArrayString, ArrayVec};

/// The names a process may attach or register. Held inline (no heap), so
/// copying it at fork cannot fail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameScope {
    /// False: any name (init, and whoever inherits its scope unchanged).
    limited: bool,
    /// When limited: the only names allowed (possibly none).
    names: ArrayVec<ArrayString<DEVICE_NAME_MAX>, NAME_SCOPE_MAX>,
    /// When not limited: names taken away by a supervisor (`revoke`).
    denied: ArrayVec<ArrayString<DEVICE_NAME_MAX>, NAME_SCOPE_MAX>,
}

impl NameScope {
    /// Every name: init's scope.
    pub const fn all() -> NameScope {
        NameScope {
            limited: false,
            names: ArrayVec::new_const(),
            denied: ArrayVec::new_const(),
        }
    }

    /// Whether `name` is in the scope.
    #[inline]
    pub fn allows(&self, name: &str) -> bool {
        if self.limited {
            self.names.iter().any(|n| n.as_str() == name)
        } else {
            !self.denied.iter().any(|n| n.as_str() == name)
        }
    }

    /// Takes `name` out of the scope (a supervisor cuts a process off a
    /// device). Nothing to do if it is not in it; `LimitReached` if the
    /// scope allows every name and already has [`NAME_SCOPE_MAX`] taken
    /// out; `InvalidArgument` for a name longer than a device name.
    pub fn revoke(&mut self, name: &str) -> Result<(), Error> {
        if !self.allows(name) {
            return Ok(());
        }
        if self.limited {
            self.names.retain(|n| n.as_str() != name);
            return Ok(());
        }
        let name = ArrayString::from(name).map_err(|_| Error::InvalidArgument)?;
        self.denied.try_push(name).map_err(|_| Error::LimitReached)
    }

    /// Narrows the scope to the names in `list` (see [`parse_list`]).
    /// `AccessDenied`, changing nothing, if the list names something the
    /// scope does not already allow.
    pub fn narrow(&mut self, list: &[u8]) -> Result<(), Error> {
        let names = parse_list(list)?;
        if names.iter().any(|n| !self.allows(n)) {
            return Err(Error::AccessDenied);
        }
        *self = NameScope {
            limited: true,
            names,
            denied: ArrayVec::new(),
        };
        Ok(())
    }

    /// How many names it lists (`None`: any name).
    pub fn name_count(&self) -> Option<usize> {
        self.limited.then_some(self.names.len())
    }
}

/// Parses a name list: names separated by NUL bytes, empty pieces (a
/// trailing NUL, two in a row) ignored and repeats kept once. Each name is
/// UTF-8 of at most [`DEVICE_NAME_MAX`] bytes without whitespace or
/// control characters, like a registered name. `InvalidArgument` for a
/// malformed name, a list longer than [`NAME_LIST_MAX`] bytes, or more
/// than [`NAME_SCOPE_MAX`] different names. The empty list is valid: it
/// allows no name at all.
pub fn parse_list(
    list: &[u8],
) -> Result<ArrayVec<ArrayString<DEVICE_NAME_MAX>, NAME_SCOPE_MAX>, Error> {
    if list.len() > NAME_LIST_MAX {
        return Err(Error::InvalidArgument);
    }
    let mut names = ArrayVec::new();
    for piece in list.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let name = core::str::from_utf8(piece).map_err(|_| Error::InvalidArgument)?;
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidArgument);
        }
        let name = ArrayString::from(name).map_err(|_| Error::InvalidArgument)?;
        if names.contains(&name) {
            continue;
        }
        names.try_push(name).map_err(|_| Error::InvalidArgument)?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrng::Rng;

    fn scope(list: &[u8]) -> NameScope {
        let mut s = NameScope::all();
        s.narrow(list).unwrap();
        s
    }

    #[test]
    fn all_allows_everything_and_only_allows_its_names() {
        assert!(NameScope::all().allows("anything"));
        let s = scope(b"console\0timer");
        assert!(s.allows("console") && s.allows("timer"));
        assert!(!s.allows("mem") && !s.allows("consol") && !s.allows("console "));
        assert_eq!(s.name_count(), Some(2));
        assert_eq!(NameScope::all().name_count(), None);
    }

    #[test]
    fn revoke_takes_a_name_away_for_good() {
        let mut all = NameScope::all();
        all.revoke("timer").unwrap();
        assert!(!all.allows("timer") && all.allows("console"));
        assert_eq!(
            all.narrow(b"timer"),
            Err(Error::AccessDenied),
            "it cannot come back"
        );
        all.narrow(b"console").unwrap();
        assert!(!all.allows("timer"));
        let mut list = scope(b"console\0timer");
        list.revoke("timer").unwrap();
        assert!(!list.allows("timer") && list.allows("console"));
        list.revoke("never-had").unwrap();
        let mut full = NameScope::all();
        for i in 0..NAME_SCOPE_MAX {
            full.revoke(&std::format!("d{i}")).unwrap();
        }
        assert_eq!(full.revoke("one-more"), Err(Error::LimitReached));
        assert_eq!(full.revoke(&"x".repeat(33)), Err(Error::InvalidArgument));
    }

    #[test]
    fn empty_list_allows_nothing() {
        let s = scope(b"");
        assert!(!s.allows("console"));
        assert_eq!(scope(b"\0\0"), s);
    }

    #[test]
    fn separators_and_repeats() {
        assert_eq!(scope(b"a\0\0b\0"), scope(b"a\0b"));
        assert_eq!(scope(b"a\0a\0b\0a").name_count(), Some(2));
    }

    #[test]
    fn malformed_lists_are_refused() {
        let mut s = NameScope::all();
        for bad in [
            &b"has space"[..],
            b"tab\tname",
            b"nl\nname",
            b"\xff\xfe",
            &[b'x'; DEVICE_NAME_MAX + 1],
        ] {
            assert_eq!(s.narrow(bad), Err(Error::InvalidArgument), "{bad:?}");
        }
        assert_eq!(s, NameScope::all(), "a refused list changes nothing");
        let long = [b'x'; NAME_LIST_MAX + 1];
        assert_eq!(s.narrow(&long), Err(Error::InvalidArgument));
        // One name too many.
        let mut many = Vec::new();
        for i in 0..=NAME_SCOPE_MAX {
            many.extend_from_slice(format!("n{i}\0").as_bytes());
        }
        assert_eq!(s.narrow(&many), Err(Error::InvalidArgument));
        many.truncate(many.len() - 4);
        assert_eq!(s.narrow(&many), Ok(()));
        assert_eq!(s.name_count(), Some(NAME_SCOPE_MAX));
    }

    #[test]
    fn a_scope_never_grows() {
        let mut s = scope(b"console\0timer");
        assert_eq!(s.narrow(b"console\0mem"), Err(Error::AccessDenied));
        assert_eq!(s, scope(b"console\0timer"), "refused whole");
        assert_eq!(s.narrow(b"timer"), Ok(()));
        assert!(!s.allows("console"));
        assert_eq!(s.narrow(b"console"), Err(Error::AccessDenied));
        assert_eq!(s.narrow(b""), Ok(()));
        assert_eq!(s.narrow(b"timer"), Err(Error::AccessDenied));
    }

    /// Random narrowing sequences: whatever is accepted, the allowed set
    /// after it is a subset of the one before.
    #[test]
    fn random_narrowing_only_shrinks() {
        const POOL: [&str; 6] = ["a", "b", "c", "dd", "e", "f"];
        let mut rng = Rng(0x5eed_1234);
        for _ in 0..2000 {
            let mut s = NameScope::all();
            for _ in 0..6 {
                let mut list = Vec::new();
                for _ in 0..rng.below(5) {
                    list.extend_from_slice(POOL[rng.below(6) as usize].as_bytes());
                    list.push(0);
                }
                let before: Vec<bool> = POOL.iter().map(|n| s.allows(n)).collect();
                let accepted = s.narrow(&list).is_ok();
                for (i, n) in POOL.iter().enumerate() {
                    assert!(!s.allows(n) || before[i], "{n} appeared");
                    let listed = list.split(|&b| b == 0).any(|p| p == n.as_bytes());
                    if accepted {
                        assert_eq!(s.allows(n), listed);
                    }
                }
            }
        }
    }
}
