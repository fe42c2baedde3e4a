//! `net` and `ping <address>`: the TCP/IP server (`net`, libmh::net) from
//! the prompt. Each opens the device, asks, and closes it again, so the
//! shell holds no handle between commands (a restarted server is simply
//! found again).

use crate::say;
use libmh::console::Console;
use libmh::net::{Config, Ipv4, Net};

/// The vector the server's completions come on (the shell's others are
/// 1–6).
const V_NET: u32 = 7;

fn open(c: &Console, what: &str) -> Option<Net> {
    match Net::open(V_NET) {
        Ok(n) => Some(n),
        Err(e) => {
            say!(c, "{what}: cannot open '{}': {e}\n", libmh::net::NAME);
            None
        }
    }
}

/// `a.b.c.d`, each part 0–255.
fn parse_ipv4(s: &str) -> Option<Ipv4> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        *o = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

struct Dotted(Ipv4);

impl core::fmt::Display for Dotted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// `net`: the interface's address, gateway, MAC and frame counters.
pub fn status(c: &Console) {
    let Some(n) = open(c, "net") else {
        return;
    };
    match n.status() {
        Ok(s) => {
            match s.address {
                Some((a, prefix, how)) => say!(
                    c,
                    "address {}/{prefix} ({})\n",
                    Dotted(a),
                    match how {
                        Config::Dhcp => "DHCP",
                        Config::Static => "static",
                    }
                ),
                None => say!(c, "no address yet (waiting for DHCP)\n"),
            }
            match s.gateway {
                Some(g) => say!(c, "gateway {}\n", Dotted(g)),
                None => say!(c, "no gateway\n"),
            }
            let m = s.mac;
            say!(
                c,
                "mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}; frames in {}, out {}\n",
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                s.rx_frames,
                s.tx_frames
            );
        }
        Err(e) => say!(c, "net: {e}\n"),
    }
    let _ = n.close();
}

/// `ping <address>`: three echo requests, one at a time.
pub fn ping(c: &Console, args: &str) {
    let Some(to) = parse_ipv4(args) else {
        return say!(c, "usage: ping <a.b.c.d>\n");
    };
    let Some(n) = open(c, "ping") else {
        return;
    };
    for seq in 1..=3 {
        match n.ping(to) {
            Ok(us) => say!(
                c,
                "reply from {}: seq {seq}, {}.{:03} ms\n",
                Dotted(to),
                us / 1000,
                us % 1000
            ),
            Err(e) => say!(c, "no reply from {} (seq {seq}): {e}\n", Dotted(to)),
        }
    }
    let _ = n.close();
}
