//! dma: the client exports a 4 KiB buffer to a user device and asks the
//! server (a forked child serving `dma-demo`) to fill it; the server
//! writes straight into the client's pages with `dma_write` and answers
//! with the byte count. The client never copies anything itself.
#![no_std]
#![no_main]

use abi::userdev::REQUEST_OUT;
use libmh::dev::{self, REGISTRY, Request, Served};
use libmh::server::{self, Reply, Server};
use libmh::{Args, Error, println, process};

libmh::entry!(main);

const NAME: &str = "dma-demo";
const V: u32 = 3;

/// The server: port 0 carries the iova of a 4 KiB export to fill; port 1
/// ends it.
struct Filler {
    data: [u8; 4096],
}

impl Server for Filler {
    fn request(&mut self, dev: Served, r: &Request) -> Reply {
        match (r.kind, r.port) {
            (REQUEST_OUT, 0) => {
                // Straight into the client's pages: no copy on its side.
                let n = match dev.dma_write(r.client, &self.data, r.value) {
                    Ok(()) => self.data.len() as u64,
                    Err(e) => u64::from(e.code()) << 32,
                };
                Reply::word(0, n, 0)
            }
            (REQUEST_OUT, 1) => Reply::Stop(0),
            _ => Reply::None,
        }
    }
}

fn serve() -> i32 {
    let Ok(d) = dev::create(dev::REGISTRY, NAME, 1, 8, 1) else {
        return 1;
    };
    let mut filler = Filler { data: [0; 4096] };
    for (i, b) in filler.data.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    server::serve(d, 1, 0, &mut filler).unwrap_or(2)
}

fn run() -> Result<bool, Error> {
    let mut h = Err(Error::NotFound);
    for _ in 0..10_000 {
        h = dev::attach(
            REGISTRY,
            NAME,
            dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ | dev::RIGHT_DMA,
        );
        if h.is_ok() {
            break;
        }
        process::yield_now();
    }
    let h = h?;
    h.irq_map(0, V)?;
    let mut buf = [0u8; 4096];
    let iova = h.export(&mut buf)?;
    h.port_out_wait(0, 8, iova, 1 << V)?;
    let n = h.port_in(0, 8)?;
    h.unexport(iova)?;
    let good = n == 4096 && buf.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8);
    println!("dma: the server wrote {n} bytes into our buffer; contents right: {good}");
    h.port_out(1, 8, 0)?;
    h.detach()?;
    Ok(good)
}

fn main(_args: Args) -> i32 {
    let server = match process::fork() {
        Ok(0) => process::exit(serve() as i64),
        Ok(pid) => pid,
        Err(e) => {
            println!("dma: fork failed: {e}");
            return 1;
        }
    };
    let ok = matches!(run(), Ok(true));
    let reaped = process::wait_child().is_ok_and(|st| st.pid == server && st.code == 0);
    if ok && reaped {
        println!("dma: ok");
        0
    } else {
        println!("dma: FAILED");
        1
    }
}
