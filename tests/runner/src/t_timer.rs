//! The timer server (servers/timer): the runner starts it from bootfs
//! (module `timer`, with `exit-when-idle`), then checks the clock read
//! from the TSC, one-shot and periodic alarms against that clock (never
//! early; lateness only bounded loosely, since TCG time is host time),
//! cancelling, the per-client limit, bad requests, and finally that the
//! server exits cleanly once its clients have left.

use crate::suite::{Fail, Suite, TestResult};
use crate::{ensure, ensure_eq};
use abi::Error;
use abi::timer::*;
use libmh::bootfs::Bootfs;
use libmh::dev::Handle;
use libmh::process;
use libmh::timer::{Alarm, Timer};

const REPLY: u32 = 50;
const ALARM: u32 = 51;
const REPLY2: u32 = 52;
const ALARM2: u32 = 53;
const MS: u64 = 1_000_000;
/// How late an alarm may be before a test calls it lost (TCG on a busy
/// host: generous; the point of the tests is the early side).
const LATE_MAX: u64 = 500 * MS;

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

/// Starts every boot module after the runner except the timer and mem
/// servers, which their tests start themselves; returns how many started.
pub fn spawn_helpers() -> Result<u32, Error> {
    let fs = Bootfs::open()?;
    let timer = fs.find("timer")?;
    let mem = fs.find("mem")?;
    let mut started = 0;
    for i in 1..fs.count()? {
        let mut buf = [0u8; 256];
        // `start = false` modules are for the tests that run them.
        if fs.options(i, &mut buf)?.no_start {
            continue;
        }
        if Some(i) != timer && Some(i) != mem {
            fs.spawn(i)?;
            started += 1;
        }
    }
    fs.0.detach()?;
    Ok(started)
}

/// Starts the timer server and opens it (retrying until it registers).
pub fn start() -> Result<(u32, Timer), Fail> {
    let fs = Bootfs::open().map_err(fail)?;
    let index = fs.find("timer").map_err(fail)?;
    ensure!(index.is_some(), "no 'timer' module in the image");
    let pid = fs.spawn(index.unwrap_or(0)).map_err(fail)?;
    let _ = fs.0.detach();
    loop {
        match Timer::open(REPLY, ALARM) {
            Ok(t) => return Ok((pid, t)),
            Err(Error::NotFound) => {
                if let Ok(st) = process::try_wait_child() {
                    return Err(Fail::new(format_args!(
                        "the timer server ended (kind {}, code {}) before registering",
                        st.kind, st.code
                    )));
                }
                process::yield_now();
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

/// One raw request: (port, size, value) -> the decoded reply.
fn raw(h: Handle, port: u32, size: u32, value: u64) -> Result<u64, Error> {
    h.port_out_wait(port, size, value, 1 << REPLY)?;
    timer_decode_reply(h.port_in(TIMER_IO_STATUS, 8)?).map(|v| v as u64)
}

/// Checks an alarm seen fired `n` times: the clock, read after the
/// counter, is past the `n`-th deadline, and not absurdly late.
/// Arms an alarm a little after now with `arm(deadline)`: 1 ms, and if
/// the deadline passed while the request travelled (the server refuses a
/// past deadline: a loaded host or a busy CPU can take that long), 20 ms,
/// then 500 ms. No timing decides a test's outcome.
fn arm_soon(
    now: impl Fn() -> u64,
    arm: impl Fn(u64) -> Result<Alarm, Error>,
) -> Result<Alarm, Fail> {
    let mut last = Err(Error::InvalidArgument);
    for margin in [MS, 20 * MS, 500 * MS] {
        last = arm(now() + margin);
        if last != Err(Error::InvalidArgument) {
            break;
        }
    }
    last.map_err(fail)
}

fn check_not_early(t: &Timer, a: Alarm, n: u64) -> Result<(), Fail> {
    let now = t.now_ns();
    let due = a.deadline(n);
    ensure!(
        now >= due,
        "alarm {} fired {n} times at {now} ns, before its deadline {due} ns",
        a.slot
    );
    ensure!(
        now - due < LATE_MAX,
        "alarm {} fired {} ms late",
        a.slot,
        (now - due) / MS
    );
    Ok(())
}

pub fn run(s: &mut Suite) {
    let (pid, t) = match start() {
        Ok(x) => x,
        Err(f) => {
            s.run("timer_server_starts", || Err(f));
            return;
        }
    };

    s.run("timer_publishes_the_clock", || {
        let c = t.clock();
        ensure!(c.mult != 0, "no multiplier");
        // Under TCG the TSC runs at the host's rate: hundreds of MHz at
        // least, a few GHz at most.
        ensure!(
            (100_000_000..20_000_000_000).contains(&c.tsc_hz),
            "TSC at {} Hz",
            c.tsc_hz
        );
        let ns_per_s = libmh::timer::Clock::ns_at(&c, c.tsc_epoch + c.tsc_hz);
        ensure!(
            ns_per_s.abs_diff(1_000_000_000) < 1_000_000,
            "one TSC second is {ns_per_s} ns"
        );
        Ok(())
    });

    s.run("timer_gives_the_kernel_its_tsc_rate", || {
        // The server writes its rate before it registers, so the kernel
        // converts with the rate this clock publishes: one for the system.
        let plat = libmh::dev::attach(libmh::dev::REGISTRY, "platform", libmh::dev::RIGHT_READ)
            .map_err(fail)?;
        let kernel_hz = plat.port_in(abi::kdev::PLATFORM_PORT_TSC_HZ, 8);
        let _ = plat.detach();
        // The kernel keeps the rate to the kHz (it converts per ms).
        ensure_eq!(kernel_hz, Ok(t.clock().tsc_hz / 1000 * 1000));
        Ok(())
    });

    s.run("timer_now_is_monotonic_and_advances", || {
        let mut last = t.now_ns();
        for _ in 0..1000 {
            let now = t.now_ns();
            ensure!(now >= last, "time went back from {last} to {now}");
            last = now;
        }
        // 100 ms on the timer is about 10 of the kernel's 100 Hz ticks
        // (both count the same virtual time). Only the upper bound is
        // tight-ish: a busy host can keep QEMU's vCPU from running, and
        // ticks due meanwhile are merged into one, so the kernel may
        // count far fewer; it must count some (the tick goes on).
        let info0 = process::sys_info().map_err(fail)?;
        let start = t.now_ns();
        t.sleep_ns(100 * MS).map_err(fail)?;
        let slept = t.now_ns() - start;
        let info1 = process::sys_info().map_err(fail)?;
        ensure!(slept >= 100 * MS, "slept {slept} ns");
        let ticks = info1.ticks - info0.ticks;
        let want = info0.tick_hz / 10;
        ensure!(
            ticks >= 1 && ticks <= want * 3 + 5,
            "100 ms on the timer took {ticks} kernel ticks at {} Hz",
            info0.tick_hz
        );
        Ok(())
    });

    s.run("timer_one_shot_alarms_never_fire_early", || {
        let mut fired = 0;
        for delay in [500_000, MS, 2 * MS, 3 * MS] {
            let deadline = t.now_ns() + delay;
            let a = match t.alarm_once(deadline) {
                Ok(a) => a,
                // The round trip took longer than the delay (a busy host):
                // refused, as documented, only if the deadline has passed.
                Err(Error::InvalidArgument) if t.now_ns() >= deadline => continue,
                Err(e) => return Err(fail(e)),
            };
            ensure_eq!(t.wait(a, 1), Ok(1), "alarm in {delay} ns");
            check_not_early(&t, a, 1)?;
            // A fired one-shot alarm is disarmed.
            ensure_eq!(t.cancel(a), Err(Error::NotFound));
            fired += 1;
        }
        ensure!(fired >= 2, "only {fired} alarms could be armed in time");
        // Several at once, armed out of order: each, when seen fired, is
        // past its own deadline.
        // (Armed from one `now`, after a base that grows if the host was too
        // slow for the group to be armed before its first deadline.)
        let mut alarms = [None; 4];
        for base in [0, 20 * MS, 500 * MS] {
            let now = t.now_ns() + base;
            let mut refused = false;
            for (k, ms) in [4u64, 1, 3, 2].iter().enumerate() {
                match t.alarm_once(now + ms * MS) {
                    Ok(a) => alarms[k] = Some(a),
                    Err(Error::InvalidArgument) if t.now_ns() >= now + ms * MS => refused = true,
                    Err(e) => return Err(fail(e)),
                }
            }
            if !refused {
                break;
            }
            for a in alarms.iter_mut().filter_map(Option::take) {
                let _ = t.cancel(a);
            }
        }
        ensure!(
            alarms.iter().all(Option::is_some),
            "the group could not be armed in time"
        );
        let mut seen = 0;
        while seen < alarms.len() {
            process::irq_wait(1 << ALARM).map_err(fail)?;
            seen = 0;
            for a in alarms.iter().flatten() {
                if t.fired(*a).map_err(fail)? == 1 {
                    check_not_early(&t, *a, 1)?;
                    seen += 1;
                }
            }
        }
        Ok(())
    });

    s.run("timer_periodic_alarms_keep_their_period", || {
        let period = MS;
        let a = arm_soon(|| t.now_ns(), |at| t.alarm_periodic(at, period))?;
        let mut last = 0;
        while last < 12 {
            let n = t.wait(a, last + 1).map_err(fail)?;
            ensure!(n > last, "counter went from {last} to {n}");
            check_not_early(&t, a, n)?;
            last = n;
            // A request wakes the server off the alarm's grid: it must
            // still count only the deadlines that have passed.
            ensure_eq!(t.request(TIMER_PORT_SYNC, 0), Ok(0));
            check_not_early(&t, a, t.fired(a).map_err(fail)?)?;
        }
        // A one-shot alarm to sleep on, armed first so that it does not
        // reuse the periodic alarm's slot (and counter).
        let nap = arm_soon(|| t.now_ns() + 2 * period, |at| t.alarm_once(at))?;
        ensure_eq!(t.cancel(a), Ok(()));
        // Cancelled: the counter stays where it was.
        let stopped = t.fired(a).map_err(fail)?;
        ensure_eq!(t.wait(nap, 1), Ok(1));
        ensure_eq!(t.fired(a), Ok(stopped));
        ensure_eq!(t.cancel(a), Err(Error::NotFound));
        Ok(())
    });

    s.run("timer_bad_requests_get_errors", || {
        let h = t.handle();
        ensure_eq!(raw(h, 99, 8, 0), Err(Error::NotSupported));
        ensure_eq!(raw(h, TIMER_PORT_SYNC, 4, 0), Err(Error::InvalidArgument));
        ensure_eq!(raw(h, TIMER_PORT_ARM, 8, 0), Err(Error::InvalidArgument));
        let past = t.now_ns() - 1;
        ensure_eq!(t.alarm_once(past).err(), Some(Error::InvalidArgument));
        ensure_eq!(
            raw(h, TIMER_PORT_PERIOD, 8, TIMER_PERIOD_MIN - 1),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(raw(h, TIMER_PORT_CANCEL, 8, 99), Err(Error::NotFound));
        ensure_eq!(raw(h, TIMER_PORT_SYNC, 8, 0), Ok(0));
        Ok(())
    });

    s.run("timer_alarm_limit_is_per_client", || {
        let far = t.now_ns() + 60_000 * MS;
        let mut armed = [None; TIMER_ALARMS_MAX as usize];
        for slot in armed.iter_mut() {
            *slot = Some(t.alarm_once(far).map_err(fail)?);
        }
        ensure_eq!(t.alarm_once(far).err(), Some(Error::LimitReached));
        // Another client has its own alarms.
        let other = Timer::open(REPLY2, ALARM2).map_err(fail)?;
        let a = arm_soon(|| other.now_ns(), |at| other.alarm_once(at))?;
        ensure_eq!(other.wait(a, 1), Ok(1));
        ensure_eq!(other.close(), Ok(()));
        for a in armed.iter().flatten() {
            ensure_eq!(t.cancel(*a), Ok(()));
        }
        let a = arm_soon(|| t.now_ns(), |at| t.alarm_once(at))?;
        ensure_eq!(t.wait(a, 1), Ok(1));
        Ok(())
    });

    let exited = |pid: u32| -> TestResult {
        let st = process::wait_child().map_err(fail)?;
        ensure_eq!(
            (st.pid, st.kind, st.code),
            (pid, abi::ExitKind::Exited as u32, 0)
        );
        Ok(())
    };

    s.run("timer_server_exits_when_its_clients_leave", || {
        ensure_eq!(t.close(), Ok(()));
        exited(pid)
    });

    s.run("timer_server_restarts_on_the_same_hpet", || {
        // The hardware device outlives its driver: a second server finds
        // it instead of making it again.
        let (pid, t) = start()?;
        let a = arm_soon(|| t.now_ns(), |at| t.alarm_once(at))?;
        ensure_eq!(t.wait(a, 1), Ok(1));
        check_not_early(&t, a, 1)?;
        ensure_eq!(t.close(), Ok(()));
        exited(pid)
    });
}
