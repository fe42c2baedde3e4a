//! libmh's server framework (`libmh::server`): a server that waits on its
//! requests and on another vector at once (here its own children's exits),
//! answers, raises lines, survives answers that cannot be given, and stops
//! with the code it chose.

use crate::suite::{Fail, Suite};
use crate::{ensure, ensure_eq};
use abi::Error;
use abi::interrupt::VECTOR_CHILD;
use abi::userdev::REQUEST_OUT;
use libmh::dev::{self, Request, Served};
use libmh::process;
use libmh::server::{self, Reply, Server};

const NAME: &str = "t-frame";
/// The server's own vector, and the client's for line 0.
const SERVER_VECTOR: u32 = 2;
const V: u32 = 21;

/// Counts its children's exits (the extra vector) and answers with it.
struct Counter {
    exits: u64,
}

impl Server for Counter {
    fn request(&mut self, _dev: Served, r: &Request) -> Reply {
        match (r.kind, r.port) {
            (REQUEST_OUT, 0) => Reply::word(0, self.exits, 0),
            (REQUEST_OUT, 1) => Reply::Stop(7),
            (REQUEST_OUT, 2) => Reply::Raise(0),
            // An answer beyond the 8-byte I/O space: cannot be given.
            (REQUEST_OUT, 3) => Reply::word(200, 1, 0),
            _ => Reply::None,
        }
    }

    fn interrupt(&mut self, _dev: Served, vectors: u64) {
        if vectors & 1 << VECTOR_CHILD != 0 {
            while process::try_wait_child().is_ok() {
                self.exits += 1;
            }
        }
    }
}

fn run_server() -> i32 {
    let Ok(d) = dev::create(dev::REGISTRY, NAME, 1, 8, SERVER_VECTOR) else {
        return 90;
    };
    // A child that ends at once: its exit arrives as VECTOR_CHILD.
    match process::fork() {
        Ok(0) => process::exit(0),
        Ok(_) => {}
        Err(_) => return 91,
    }
    let mut counter = Counter { exits: 0 };
    server::serve(d, SERVER_VECTOR, 1 << VECTOR_CHILD, &mut counter).unwrap_or(92)
}

pub fn run(s: &mut Suite) {
    s.run(
        "server_framework_waits_on_requests_and_other_vectors",
        || {
            let fail = |e: Error| Fail::new(format_args!("{e}"));
            let pid = match process::fork().map_err(fail)? {
                0 => process::exit(run_server() as i64),
                pid => pid,
            };
            let h = crate::echo::attach_when_ready(
                NAME,
                dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ,
            )
            .map_err(fail)?;
            h.irq_map(0, V).map_err(fail)?;
            // The child's exit reaches the server's interrupt side.
            let mut exits = 0;
            for _ in 0..1000 {
                ensure_eq!(h.port_out_wait(0, 8, 0, 1 << V), Ok(1 << V));
                exits = h.port_in(0, 8).map_err(fail)?;
                if exits == 1 {
                    break;
                }
                process::yield_now();
            }
            ensure_eq!(exits, 1);
            // A bare raise, then an answer that cannot be given: the server
            // goes on and answers the next request.
            ensure_eq!(h.port_out_wait(2, 8, 0, 1 << V), Ok(1 << V));
            ensure_eq!(h.port_out(3, 8, 0), Ok(()));
            ensure_eq!(h.port_out_wait(0, 8, 0, 1 << V), Ok(1 << V));
            ensure_eq!(h.port_in(0, 8), Ok(1));
            // Stop: the server exits with the code it chose.
            ensure_eq!(h.port_out(1, 8, 0), Ok(()));
            let st = process::wait_child().map_err(fail)?;
            ensure!(st.pid == pid, "reaped {}", st.pid);
            ensure_eq!(st.code, 7);
            ensure_eq!(h.port_in(0, 8), Err(Error::DeviceGone));
            ensure_eq!(h.detach(), Ok(()));
            Ok(())
        },
    );
}
