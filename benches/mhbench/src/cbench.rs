//! The C round trip: `examples/ipc-c` run with `bench`, a user-device
//! server and client written against the generated `mh.h` only. It
//! prints its own `bench ipc_round_trip_c <instructions> <rounds>` line
//! (the TSC counts instructions under `-icount`); this module starts it
//! from bootfs, waits for it and reports a failure if it did not end
//! well, so that the figure is never silently missing.

use crate::measure::Fail;
use libmh::bootfs::Bootfs;
use libmh::process;

/// Runs ipc-c's benchmark; 0 if it printed its figure, 1 if it failed
/// (the `FAILED` line is printed here).
pub fn run() -> u32 {
    match run_ipc_c() {
        Ok(()) => 0,
        Err(e) => {
            libmh::println!("bench ipc_round_trip_c FAILED {e}");
            1
        }
    }
}

fn run_ipc_c() -> Result<(), Fail> {
    let fs = Bootfs::open()?;
    let index = fs
        .find("ipc-c")?
        .ok_or(Fail::Check("no 'ipc-c' module in the image", 0))?;
    let pid = fs.spawn_with(index, Some("bench"))?;
    fs.0.detach()?;
    let st = process::wait_child()?;
    if st.pid != pid || st.kind != abi::ExitKind::Exited as u32 || st.code != 0 {
        return Err(Fail::Check("ipc-c did not end with status 0", st.code));
    }
    Ok(())
}
