//! COM1, the kernel's console until the console server takes over.
//!
//! Rules: output only, polled (the console server will own input and the
//! IRQ); `\n` becomes `\r\n` so raw terminals show lines properly.

use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};

const COM1: u16 = 0x3f8;

/// The initialised port, or nothing if the UART did not come up.
pub struct Serial(Option<Uart16550<PioBackend>>);

impl Serial {
    pub const fn is_absent(&self) -> bool {
        self.0.is_none()
    }

    pub const fn absent() -> Serial {
        Serial(None)
    }

    /// Initialises COM1 (115200 8N1, FIFO on).
    pub fn init() -> Serial {
        // SAFETY: COM1's eight ports belong to the kernel until the console
        // server is started; nothing else drives them.
        let port = unsafe { Uart16550::new_port(COM1) };
        let port = port
            .ok()
            .and_then(|mut p| p.init(Config::default()).ok().map(|()| p));
        Serial(port)
    }

    /// Sends bytes, translating line ends.
    pub fn write(&mut self, bytes: &[u8]) {
        let Some(port) = self.0.as_mut() else { return };
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            match chunk.split_last() {
                Some((b'\n', body)) => {
                    port.send_bytes_exact(body);
                    port.send_bytes_exact(b"\r\n");
                }
                _ => port.send_bytes_exact(chunk),
            }
        }
    }
}
