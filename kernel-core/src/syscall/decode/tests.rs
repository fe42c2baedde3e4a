//! Decoding, table-driven: for every system call, one well-formed call
//! and each way its words can be malformed, with the error decoding must
//! give; and random words, which must decode or fail, never panic.

use super::*;
use crate::testrng::Rng;
use Error::{BadAddress, InvalidArgument};

/// A user address (page-aligned, well inside the user half).
const U: u64 = 0x1000_0000;
/// A kernel address.
const K: u64 = 0xffff_8000_0000_0000;
/// The last user page.
const TOP: u64 = abi::layout::USER_END - 4096;

/// Sysno, its words, and what decoding must say (`None`: it decodes).
type Case = (Sysno, [u64; 6], Option<Error>);

fn cases() -> alloc::vec::Vec<Case> {
    use Sysno::*;
    let log = LOG_WRITE_MAX as u64;
    let all_vectors = (1u64 << VECTOR_COUNT) - 1;
    let rights = u64::from(RIGHTS_ALL);
    let coe = u64::from(ATTACH_CLOSE_ON_EXEC);
    let name = DEVICE_NAME_MAX as u64;
    let ok = None;
    alloc::vec![
        (LogWrite, [U, 10, 0, 0, 0, 0], ok),
        (LogWrite, [0, 0, 0, 0, 0, 0], ok),
        (LogWrite, [U, log + 1, 0, 0, 0, 0], Some(InvalidArgument)),
        (LogWrite, [K, 10, 0, 0, 0, 0], Some(BadAddress)),
        (LogWrite, [TOP + 4000, 200, 0, 0, 0, 0], Some(BadAddress)),
        (LogWrite, [0, 1, 0, 0, 0, 0], Some(BadAddress)),
        (LogRead, [0, U, 1 << 40, 0, 0, 0], ok),
        (LogRead, [0, K, 16, 0, 0, 0], Some(BadAddress)),
        (Exit, [u64::MAX, 0, 0, 0, 0, 0], ok),
        (WaitChild, [U, WAIT_NOHANG, 0, 0, 0, 0], ok),
        (WaitChild, [U, 2, 0, 0, 0, 0], Some(InvalidArgument)),
        (WaitChild, [K, 0, 0, 0, 0, 0], Some(BadAddress)),
        (WaitChild, [0, 0, 0, 0, 0, 0], Some(BadAddress)),
        (WaitChild, [TOP + 4090, 0, 0, 0, 0, 0], Some(BadAddress)),
        (Exec, [U, 4096, U, 10, 0, 0], ok),
        (Exec, [U, 0, U, 10, 0, 0], Some(InvalidArgument)),
        (
            Exec,
            [U, EXEC_IMAGE_MAX as u64 + 1, 0, 0, 0, 0],
            Some(InvalidArgument)
        ),
        (Exec, [K, 4096, 0, 0, 0, 0], Some(BadAddress)),
        (
            Exec,
            [U, 4096, U, CMDLINE_MAX as u64 + 1, 0, 0],
            Some(InvalidArgument)
        ),
        (Exec, [U, 4096, K, 1, 0, 0], Some(BadAddress)),
        (SetPriority, [0, 7, 0, 0, 0, 0], ok),
        (SetPriority, [0, 8, 0, 0, 0, 0], Some(InvalidArgument)),
        (
            SetPriority,
            [0, u64::MAX, 0, 0, 0, 0],
            Some(InvalidArgument)
        ),
        (SysInfo, [U, 0, 0, 0, 0, 0], ok),
        (SysInfo, [K, 0, 0, 0, 0, 0], Some(BadAddress)),
        (VmMap, [U, 4096, 3, 0, 0, 0], ok),
        (VmMap, [U + 1, 4096, 3, 0, 0, 0], Some(InvalidArgument)),
        (VmMap, [U, 4095, 3, 0, 0, 0], Some(InvalidArgument)),
        (VmMap, [U, 0, 3, 0, 0, 0], Some(InvalidArgument)),
        (VmMap, [K, 4096, 3, 0, 0, 0], Some(BadAddress)),
        (VmMap, [TOP, 8192, 3, 0, 0, 0], Some(BadAddress)),
        (VmMap, [u64::MAX - 4095, 4096, 3, 0, 0, 0], Some(BadAddress)),
        (VmMap, [U, 4096, 1 << 40, 0, 0, 0], Some(InvalidArgument)),
        (VmProtect, [U, 4096, 1, 0, 0, 0], ok),
        (
            VmProtect,
            [U, 4096, u64::MAX, 0, 0, 0],
            Some(InvalidArgument)
        ),
        (VmUnmap, [U, 4096, 0, 0, 0, 0], ok),
        (VmUnmap, [0, 4096, 0, 0, 0, 0], Some(BadAddress)),
        (IntReturn, [U, 0, 0, 0, 0, 0], ok),
        (IntReturn, [K, 0, 0, 0, 0, 0], Some(BadAddress)),
        (IntEnable, [1, 0, 0, 0, 0, 0], ok),
        (IntEnable, [2, 0, 0, 0, 0, 0], Some(InvalidArgument)),
        (IrqWait, [all_vectors, 0, 0, 0, 0, 0], ok),
        (IrqWait, [0, 0, 0, 0, 0, 0], Some(InvalidArgument)),
        (
            IrqWait,
            [1 << VECTOR_COUNT, 0, 0, 0, 0, 0],
            Some(InvalidArgument)
        ),
        (IrqRaise, [u64::from(VECTOR_COUNT) - 1, 0, 0, 0, 0, 0], ok),
        (
            IrqRaise,
            [u64::from(VECTOR_COUNT), 0, 0, 0, 0, 0],
            Some(InvalidArgument)
        ),
        (Attach, [0, U, name, rights | coe, 0, 0], ok),
        (Attach, [0, U, 0, 0, 0, 0], Some(InvalidArgument)),
        (Attach, [0, U, name + 1, 0, 0, 0], Some(InvalidArgument)),
        (Attach, [0, U, 4, rights + 1, 0, 0], Some(InvalidArgument)),
        (Attach, [0, K, 4, 0, 0, 0], Some(BadAddress)),
        (Info, [0, U, 0, 0, 0, 0], ok),
        (Info, [0, 0, 0, 0, 0, 0], Some(BadAddress)),
        (Restrict, [0, rights, 0, 0, 0, 0], ok),
        (Restrict, [0, coe, 0, 0, 0, 0], Some(InvalidArgument)),
        (PortIn, [0, 0, 8, 0, 0, 0], ok),
        (PortIn, [0, 0, 3, 0, 0, 0], Some(InvalidArgument)),
        (PortIn, [0, 0, 16, 0, 0, 0], Some(InvalidArgument)),
        (PortIn, [0, 1 << 32, 4, 0, 0, 0], Some(InvalidArgument)),
        (PortOut, [0, 0, 0, 0, 0, 0], Some(InvalidArgument)),
        (PortOut, [0, u64::from(u32::MAX), 1, 0, 0, 0], ok),
        (PortOutWait, [0, 0, 4, 0, 1, 0], ok),
        (PortOutWait, [0, 0, 4, 0, 0, 0], Some(InvalidArgument)),
        (PortOutWait, [0, 0, 5, 0, 1, 0], Some(InvalidArgument)),
        (Export, [0, U, 100, 0, 0, 0], ok),
        (Export, [0, K, 100, 0, 0, 0], Some(BadAddress)),
        (Export, [0, U, 0, 0, 0, 0], Some(InvalidArgument)),
        (Export, [0, U, 100, 2, 0, 0], Some(InvalidArgument)),
        (Export, [0, U, 100, 1, U, 8], ok),
        (Export, [0, U, 100, 0, K, 8], Some(BadAddress)),
        (Export, [0, U, 100, 0, U, 1 << 40], Some(InvalidArgument)),
        (IrqMap, [0, 0, 62, 0, 0, 0], ok),
        (IrqMap, [0, 0, 63, 0, 0, 0], Some(InvalidArgument)),
        (DevCreate, [0, U, 0, 0, 0, 0], ok),
        (DevCreate, [0, 0, 0, 0, 0, 0], Some(BadAddress)),
        (DevPoll, [0, 0, POLL_NOWAIT, 0, 0, 0], ok),
        (DevPoll, [0, U, 0, 0, 0, 0], ok),
        (DevPoll, [0, U, 2, 0, 0, 0], Some(InvalidArgument)),
        (DevPoll, [0, K, 0, 0, 0, 0], Some(BadAddress)),
        (DevWriteIospace, [0, 1, 0, 8, 5, 0], ok),
        (DevWriteIospace, [0, 1, 0, 7, 5, 0], Some(InvalidArgument)),
        (DevDmaRead, [0, 1, 0, U, DMA_MAX, 0], ok),
        (
            DevDmaRead,
            [0, 1, 0, U, DMA_MAX + 1, 0],
            Some(InvalidArgument)
        ),
        (DevDmaRead, [0, 1, 0, K, 16, 0], Some(BadAddress)),
        (DevDmaRead, [0, 1, 0, u64::MAX, 2, 0], Some(InvalidArgument)),
        (DevDmaWrite, [0, 1, U, 16, 0, 0], ok),
        (DevDmaWrite, [0, 1, K, 16, 0, 0], Some(BadAddress)),
        (DevReplyPoll, [0, 1, 0, 0, u64::MAX, 0], ok),
        (DevReplyPoll, [0, 1, 8, 0, 0, U], ok),
        (DevReplyPoll, [0, 1, 3, 0, 0, 0], Some(InvalidArgument)),
        (
            DevReplyPoll,
            [0, 1, u64::MAX, 0, 0, 0],
            Some(InvalidArgument)
        ),
        (DevReplyPoll, [0, 1, 0, 0, 0, K], Some(BadAddress)),
        (RestrictNames, [U, NAME_LIST_MAX as u64, 0, 0, 0, 0], ok),
        (
            RestrictNames,
            [U, NAME_LIST_MAX as u64 + 1, 0, 0, 0, 0],
            Some(InvalidArgument)
        ),
        (RestrictNames, [K, 1, 0, 0, 0, 0], Some(BadAddress)),
        (SetAffinity, [0, 0b11, 0, 0, 0, 0], ok),
        (SetAffinity, [0, 1 << 16, 0, 0, 0, 0], Some(InvalidArgument)),
        (
            SetAffinity,
            [0, u64::MAX, 0, 0, 0, 0],
            Some(InvalidArgument)
        ),
    ]
}

#[test]
fn every_malformed_argument_is_refused_with_its_error() {
    for (number, a, want) in cases() {
        let got = decode(number, a).err();
        assert_eq!(got, want, "{number:?} {a:x?}");
    }
}

#[test]
fn every_call_has_a_case_that_decodes_and_words_it_ignores_stay_ignored() {
    let table = cases();
    // Calls without a malformed form take any words.
    let any_words = [
        Sysno::GetPid,
        Sysno::Yield,
        Sysno::Fork,
        Sysno::Detach,
        Sysno::Unexport,
        Sysno::IrqAck,
        Sysno::DevIrq,
        Sysno::VmMove,
        Sysno::SetHandler,
        Sysno::IoMap,
        Sysno::IoUnmap,
    ];
    for number in Sysno::ALL {
        if any_words.contains(&number) {
            assert!(decode(number, [u64::MAX; 6]).is_ok(), "{number:?}");
            continue;
        }
        let (_, a, _) = table
            .iter()
            .find(|(n, _, want)| *n == number && want.is_none())
            .unwrap_or_else(|| panic!("no well-formed case for {number:?}"));
        assert!(decode(number, *a).is_ok());
    }
}

#[test]
fn decoding_keeps_the_values_it_checked() {
    assert_eq!(
        decode(Sysno::PortOutWait, [3, 7, 4, 99, 0b110, 0]),
        Ok(Call::PortOutWait {
            h: 3,
            port: Port { port: 7, size: 4 },
            value: 99,
            mask: VectorMask(0b110),
        })
    );
    assert_eq!(
        decode(Sysno::DevReplyPoll, [1, 2, (5 << 8) | 8, 42, u64::MAX, 0]),
        Ok(Call::DevReplyPoll {
            dev: 1,
            client: 2,
            answer: Some((Port { port: 5, size: 8 }, 42)),
            line: None,
            out: None,
        })
    );
    let Ok(Call::Attach {
        rights,
        close_on_exec,
        ..
    }) = decode(
        Sysno::Attach,
        [0, U, 4, u64::from(ATTACH_CLOSE_ON_EXEC) | 3, 0, 0],
    )
    else {
        panic!("attach decodes");
    };
    assert_eq!((rights, close_on_exec), (Rights(3), true));
}

#[test]
fn random_words_decode_or_fail_and_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for _ in 0..200_000 {
        let number = Sysno::ALL[rng.below(Sysno::ALL.len() as u64) as usize];
        // Mostly small values and user addresses, some anything.
        let mut a = [0u64; 6];
        for w in &mut a {
            *w = match rng.below(4) {
                0 => rng.below(16),
                1 => U + rng.below(1 << 20) * 4096,
                2 => rng.below(1 << 12),
                _ => rng.next(),
            };
        }
        if decode(number, a).is_ok() {
            decoded += 1;
        }
    }
    // Enough of them get past decoding for the check to mean something.
    assert!(decoded > 20_000, "only {decoded} decoded");
}
