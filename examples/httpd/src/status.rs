//! The status of the running system, as HTML and as JSON: processes,
//! devices, memory and uptime, read from the kernel (`proc`, the registry,
//! `sys_info`) through read-only views.
//!
//! Rules: nothing here can change the system: the `proc` handle is opened
//! without KILL, the registry is only listed; names are escaped for the
//! format they go into.

use alloc::string::String;
use core::fmt::Write;
use libmh::{process, procs, registry};

fn kind_name(kind: u32) -> &'static str {
    match kind {
        abi::bus::DEVICE_KIND_KERNEL => "kernel",
        abi::bus::DEVICE_KIND_USER => "user",
        abi::bus::DEVICE_KIND_HARDWARE => "hardware",
        _ => "?",
    }
}

/// `s` with HTML's and JSON's special characters escaped (names are
/// printable ASCII, but a name is a program's choice).
fn escape(out: &mut String, s: &str, json: bool) {
    for c in s.chars() {
        match (c, json) {
            ('<', false) => out.push_str("&lt;"),
            ('>', false) => out.push_str("&gt;"),
            ('&', false) => out.push_str("&amp;"),
            ('"', _) => out.push_str(if json { "\\\"" } else { "&quot;" }),
            ('\\', true) => out.push_str("\\\\"),
            (c, _) if c.is_control() => out.push('?'),
            (c, _) => out.push(c),
        }
    }
}

struct Snapshot {
    uptime_ms: u64,
    free_kib: u64,
    total_kib: u64,
    procs: alloc::vec::Vec<procs::Entry>,
    devices: alloc::vec::Vec<registry::Entry>,
}

fn snapshot() -> Snapshot {
    let info = process::sys_info().ok();
    let uptime_ms = info.map_or(0, |i| i.ticks * 1000 / i.tick_hz.max(1));
    let mut list = alloc::vec::Vec::new();
    if let Ok(h) = procs::open(false) {
        let _ = procs::for_each(h, |e| list.push(*e));
        let _ = h.detach();
    }
    let mut devices = alloc::vec::Vec::new();
    let _ = registry::for_each(|e| devices.push(*e));
    Snapshot {
        uptime_ms,
        free_kib: info.map_or(0, |i| i.free_frames * 4),
        total_kib: info.map_or(0, |i| i.total_frames * 4),
        procs: list,
        devices,
    }
}

pub fn html() -> String {
    let s = snapshot();
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>MH status</title></head><body>\
         <h1>MH</h1><p>up {}.{:03} s; memory: {} KiB free of {} KiB</p>\
         <h2>Processes</h2><table><tr><th>pid</th><th>parent</th><th>state</th><th>priority</th><th>KiB</th><th>name</th></tr>",
        s.uptime_ms / 1000,
        s.uptime_ms % 1000,
        s.free_kib,
        s.total_kib
    );
    for p in &s.procs {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
            p.pid,
            p.parent,
            p.state_name(),
            p.priority,
            p.frames * 4
        );
        escape(&mut o, p.name(), false);
        o.push_str("</td></tr>");
    }
    o.push_str("</table><h2>Devices</h2><table><tr><th>name</th><th>kind</th><th>clients</th><th>server</th></tr>");
    for d in &s.devices {
        o.push_str("<tr><td>");
        escape(&mut o, d.name(), false);
        let _ = write!(
            o,
            "</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            kind_name(d.kind),
            d.clients,
            d.server
        );
    }
    o.push_str("</table><p><a href=\"/status.json\">JSON</a></p></body></html>\n");
    o
}

pub fn json() -> String {
    let s = snapshot();
    let mut o = String::new();
    let _ = write!(
        o,
        "{{\"uptime_ms\":{},\"memory\":{{\"free_kib\":{},\"total_kib\":{}}},\"processes\":[",
        s.uptime_ms, s.free_kib, s.total_kib
    );
    for (i, p) in s.procs.iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"pid\":{},\"parent\":{},\"state\":\"{}\",\"priority\":{},\"kib\":{},\"name\":\"",
            if i == 0 { "" } else { "," },
            p.pid,
            p.parent,
            p.state_name(),
            p.priority,
            p.frames * 4
        );
        escape(&mut o, p.name(), true);
        o.push_str("\"}");
    }
    o.push_str("],\"devices\":[");
    for (i, d) in s.devices.iter().enumerate() {
        let _ = write!(o, "{}{{\"name\":\"", if i == 0 { "" } else { "," });
        escape(&mut o, d.name(), true);
        let _ = write!(
            o,
            "\",\"kind\":\"{}\",\"clients\":{},\"server\":{}}}",
            kind_name(d.kind),
            d.clients,
            d.server
        );
    }
    o.push_str("]}\n");
    o
}
