//! Reading the time: libmh's clock (`rdtsc` and a multiplication, no
//! system call) against the cheapest read a clock behind a system call
//! could be, one `port_in` on the timer device's I/O space. Each benchmark
//! starts the timer server from bootfs (module `timer`, which exits when
//! its last client leaves) and reaps it.

use crate::measure::{self, Fail};
use abi::timer::TIMER_IO_MULT;
use libmh::bootfs::Bootfs;
use libmh::process;
use libmh::timer::Timer;

const REPLY: u32 = 20;
const ALARM: u32 = 21;

/// Runs `f` with the timer server up and opened, then lets it exit.
fn with_timer(f: impl FnOnce(&Timer) -> Result<u64, Fail>) -> Result<u64, Fail> {
    let fs = Bootfs::open()?;
    let index = fs
        .find("timer")?
        .ok_or(Fail::Check("no 'timer' module in the image", 0))?;
    let pid = fs.spawn(index)?;
    fs.0.detach()?;
    let timer = loop {
        match Timer::open(REPLY, ALARM) {
            Ok(t) => break t,
            Err(abi::Error::NotFound) => {
                if let Ok(st) = process::try_wait_child() {
                    return Err(Fail::Check("the timer server ended early", st.code));
                }
                process::yield_now()
            }
            Err(e) => return Err(e.into()),
        }
    };
    let result = f(&timer);
    timer.close()?;
    let st = process::wait_child()?;
    if st.pid != pid || st.code != 0 {
        return Err(Fail::Check(
            "the timer server did not exit cleanly",
            st.code,
        ));
    }
    result
}

/// `Timer::now_ns()`: the TSC read and converted in user space.
pub fn now_ns() -> Result<(u64, u64), Fail> {
    const N: u64 = 20_000;
    let per = with_timer(|t| {
        measure::run(N, 100, &mut |_| {
            core::hint::black_box(t.now_ns());
            Ok(())
        })
    })?;
    Ok((per, N))
}

/// `port_in` of the clock's multiplier from the timer's I/O space.
pub fn port_in_timer() -> Result<(u64, u64), Fail> {
    const N: u64 = 20_000;
    let per = with_timer(|t| {
        let h = t.handle();
        measure::run(N, 100, &mut |_| {
            core::hint::black_box(h.port_in(TIMER_IO_MULT, 8)?);
            Ok(())
        })
    })?;
    Ok((per, N))
}
