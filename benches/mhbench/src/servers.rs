//! Starting the servers some benchmarks measure against (from bootfs,
//! outside the measured batches), opening them once they have registered,
//! and stopping them again.
//!
//! Rules: every server started is killed and reaped by the same
//! benchmark; waiting for one to register gives up if it ends first.

use crate::measure::Fail;
use abi::Error;
use libmh::bootfs::Bootfs;
use libmh::{process, procs};

/// Starts module `name` from bootfs; its pid.
pub fn spawn(name: &'static str) -> Result<u32, Fail> {
    let fs = Bootfs::open()?;
    let index = fs
        .find(name)?
        .ok_or(Fail::Check("a module is missing from the image", 0))?;
    let pid = fs.spawn(index)?;
    fs.0.detach()?;
    Ok(pid)
}

/// Calls `open` until the server it names has registered (`NotFound`
/// until then); `Check(ended)` if a child ends first.
pub fn open_when_up<T>(
    ended: &'static str,
    mut open: impl FnMut() -> Result<T, Error>,
) -> Result<T, Fail> {
    loop {
        match open() {
            Ok(t) => return Ok(t),
            Err(Error::NotFound) => {
                if let Ok(st) = process::try_wait_child() {
                    return Err(Fail::Check(ended, st.code));
                }
                process::yield_now()
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Kills and reaps child `pid`.
pub fn stop(pid: u32) -> Result<(), Fail> {
    let k = procs::open(true)?;
    procs::kill(k, pid)?;
    k.detach()?;
    let st = process::wait_child()?;
    if st.pid != pid {
        return Err(Fail::Check("reaped another child", st.pid as i64));
    }
    Ok(())
}
