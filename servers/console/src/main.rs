//! console: the console server. It drives the 16550 UART on COM1 through a
//! hardware device, writes the kernel log (klog) and its clients' output
//! to it, and hands typed lines to its clients (the protocol is in
//! `abi::console`; the device page is docs/devices/console.md).
//!
//! Rules: one event loop (libmh::server's, waiting on three vectors:
//! requests, UART input, klog growth), and each event is handled to the
//! end before the next, so a client's write goes out whole and is never interleaved with
//! another's; kernel-log output goes above a line a client left
//! unfinished (the shell's prompt and what is typed after it), which is
//! then drawn again (`screen`); nothing a client sends can stop the
//! loop — a bad request gets an error result and the loop goes on.
#![no_std]
#![no_main]

mod clients;
mod klog;
mod line;
mod screen;
mod uart;

use abi::console::*;
use abi::userdev::{ClientId, REQUEST_CLOSE, REQUEST_OUT, Request};
use arrayvec::ArrayVec;
use clients::Clients;
use libmh::dev::{self, Served};
use libmh::server::{self, Reply, Server};
use libmh::{Args, Error, println};
use line::{Event, Line};
use screen::Screen;
use uart::Uart;

/// Vectors: requests queued on the console device, UART input, klog data.
const V_REQUEST: u32 = 1;
const V_UART: u32 = 2;
const V_KLOG: u32 = 3;

libmh::entry!(main);

struct Console<'a> {
    dev: Served,
    /// The UART, through what its last line shows.
    screen: Screen,
    klog: klog::Drain<'a>,
    line: Line,
    clients: Clients,
    /// Scratch for one client write.
    buf: [u8; CONSOLE_WRITE_MAX as usize],
}

fn main(_args: Args) -> i32 {
    match run() {
        Ok(()) => 0,
        Err(e) => {
            println!("console: stopped: {e}");
            1
        }
    }
}

fn run() -> Result<(), Error> {
    // The log position before the claim: from the claim on the kernel no
    // longer writes to the UART, so everything after it is ours to show.
    let step = |what: &'static str| {
        move |e: Error| {
            println!("console: cannot {what}: {e}");
            e
        }
    };
    let mut klog_buffer: klog::Buffer = [0; 1024];
    let klog = klog::Drain::open(V_KLOG, &mut klog_buffer).map_err(step("read the kernel log"))?;
    let uart = Uart::claim(V_UART).map_err(step("claim COM1"))?;
    let dev = dev::create(
        dev::REGISTRY,
        libmh::console::DEVICE_NAME,
        CONSOLE_IRQ_LINES,
        CONSOLE_IOSPACE_SIZE,
        V_REQUEST,
    )
    .map_err(step("register 'console'"))?;
    let mut c = Console {
        dev,
        screen: Screen::new(uart),
        klog,
        line: Line::new(),
        clients: Clients::new(),
        buf: [0; CONSOLE_WRITE_MAX as usize],
    };
    println!("console: ready on COM1");
    // The log so far, and input typed before the claim (it waits in the
    // UART): take them first.
    c.klog.drain(&mut c.screen);
    c.input();
    let extra = (1 << V_UART) | (1 << V_KLOG);
    server::serve(dev, V_REQUEST, extra, &mut c).map(|_| ())
}

impl Server for Console<'_> {
    fn request(&mut self, _dev: Served, r: &Request) -> Reply {
        match r.kind {
            REQUEST_OUT => self.out(r.client, r.pid, r.port, r.value),
            REQUEST_CLOSE => self.clients.remove(r.client),
            // Opens and forks: a client gets state when it names a buffer.
            _ => {}
        }
        // Answers go out through `finish`, now or when a line is typed.
        Reply::None
    }

    /// The UART or klog line: show the log and take the typed bytes
    /// (the lines only say "look"). This runs before the requests that
    /// queued meanwhile, so a program's last log line comes out before
    /// the prompt the shell writes after it ended. No `idle` pass is
    /// needed: data that arrives later raises its line again.
    fn interrupt(&mut self, _dev: Served, _vectors: u64) {
        self.klog.drain(&mut self.screen);
        self.input();
    }
}

impl Console<'_> {
    /// Every received byte through the line discipline.
    fn input(&mut self) {
        self.screen.uart.ack();
        while let Some(byte) = self.screen.uart.receive() {
            let mut echo = ArrayVec::<u8, 64>::new();
            let live = self.clients.next_reader().is_some();
            let event = self.line.receive(byte, live, &mut echo);
            self.screen.line(&echo);
            match event {
                Event::Nothing => {}
                Event::Line | Event::EndOfInput => self.serve_reads(),
                Event::Interrupt => {
                    if let Some(fg) = self.clients.foreground() {
                        let _ = self.dev.irq(fg, CONSOLE_IRQ_INTERRUPT);
                    }
                }
            }
        }
    }

    fn out(&mut self, client: ClientId, pid: u32, port: u32, value: u64) {
        match port {
            CONSOLE_PORT_OUT_BUFFER => self.clients.set_out(client, pid, value),
            CONSOLE_PORT_IN_BUFFER => self.clients.set_in(client, pid, value),
            CONSOLE_PORT_WRITE => {
                let result = self.write(client, value);
                self.finish(client, CONSOLE_IO_WRITE_RESULT, result);
            }
            CONSOLE_PORT_SYNC => {
                self.klog.drain(&mut self.screen);
                self.finish(client, CONSOLE_IO_WRITE_RESULT, Ok(0));
            }
            CONSOLE_PORT_FOREGROUND => {
                self.clients.set_foreground(client);
                self.finish(client, CONSOLE_IO_WRITE_RESULT, Ok(0));
            }
            CONSOLE_PORT_READ => match self.clients.ask_read(client, value) {
                Ok(()) => {
                    self.serve_reads();
                    if self.clients.next_reader().is_some() {
                        // Still waiting: show what was typed ahead so far.
                        let mut echo = ArrayVec::<u8, 64>::new();
                        self.line.show_typing(&mut echo);
                        self.screen.line(&echo);
                    }
                }
                Err(e) => self.finish(client, CONSOLE_IO_READ_RESULT, Err(e)),
            },
            _ => self.finish(client, CONSOLE_IO_WRITE_RESULT, Err(Error::InvalidArgument)),
        }
    }

    /// One client write: its bytes by DMA, then all of them to the UART.
    fn write(&mut self, client: ClientId, len: u64) -> Result<u64, Error> {
        if len > CONSOLE_WRITE_MAX {
            return Err(Error::InvalidArgument);
        }
        let iova = self.clients.out_buffer(client).ok_or(Error::NotFound)?;
        let bytes = &mut self.buf[..len as usize];
        self.dev.dma_read(client, iova, bytes)?;
        self.screen.line(bytes);
        Ok(len)
    }

    /// Completes waiting reads while lines (or the end of input) allow.
    fn serve_reads(&mut self) {
        while let Some((client, max, iova)) = self.clients.next_reader() {
            if !self.line.has_line() && !self.line.ended {
                return;
            }
            let mut text = [0u8; CONSOLE_LINE_MAX as usize];
            let (n, unshown) = self.line.take_line(max as usize, &mut text);
            self.screen.line(&text[unshown..n]);
            let result = self
                .dev
                .dma_write(client, &text[..n], iova)
                .map(|()| n as u64);
            self.clients.read_done(client);
            self.finish(client, CONSOLE_IO_READ_RESULT, result);
        }
    }

    /// Puts a result in the client's I/O space and raises DONE.
    fn finish(&mut self, client: ClientId, at: u32, result: Result<u64, Error>) {
        let word = match result {
            Ok(n) => n,
            Err(e) => CONSOLE_RESULT_ERROR | u64::from(e.code()),
        };
        let _ = self.dev.write_iospace(client, at, 8, word);
        let _ = self.dev.irq(client, CONSOLE_IRQ_DONE);
    }
}
