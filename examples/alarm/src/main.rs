//! alarm: a client of the timer server. It sleeps 20 ms with a one-shot
//! alarm, then takes five ticks of a 10 ms periodic alarm, and checks
//! against the clock (read from the TSC, no system call) that no alarm
//! came early.
#![no_std]
#![no_main]

use libmh::timer::Timer;
use libmh::{Args, Error, println};

libmh::entry!(main);

const MS: u64 = 1_000_000;

fn run() -> Result<(), Error> {
    let timer = Timer::open(1, 2)?;
    let start = timer.now_ns();

    let once = timer.alarm_once(start + 20 * MS)?;
    timer.wait(once, 1)?;
    let slept = timer.now_ns() - start;
    println!(
        "alarm: one-shot of 20 ms fired after {}.{:03} ms",
        slept / MS,
        slept % MS / 1000
    );
    if slept < 20 * MS {
        println!("alarm: FAILED: early");
        return Err(Error::InvalidArgument);
    }

    let first = timer.now_ns() + 10 * MS;
    let tick = timer.alarm_periodic(first, 10 * MS)?;
    for k in 1..=5 {
        timer.wait(tick, k)?;
        let due = first + (k - 1) * 10 * MS;
        let now = timer.now_ns();
        if now < due {
            println!("alarm: FAILED: tick {k} early by {} ns", due - now);
            return Err(Error::InvalidArgument);
        }
        println!(
            "alarm: tick {k}, {} us after its deadline",
            (now - due) / 1000
        );
    }
    timer.cancel(tick)?;
    timer.close()
}

fn main(_args: Args) -> i32 {
    match run() {
        Ok(()) => {
            println!("alarm: ok, nothing fired early");
            0
        }
        Err(e) => {
            println!("alarm: failed: {e}");
            1
        }
    }
}
