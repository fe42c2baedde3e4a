//! The manifest's `[[nic]]` entries: network interfaces QEMU gives the
//! image, each a virtio-net PCI function on QEMU's user network (its own
//! NAT: the guest is 10.0.2.15 behind a gateway at 10.0.2.2, and reaches
//! nothing but what QEMU forwards), with TCP ports of the guest forwarded
//! from 127.0.0.1 of the host.
//!
//! Rules: like the rest of the manifest, checked before anything is built,
//! every error naming its field (`nic[0].forward[1].guest`). Forwards bind
//! 127.0.0.1 only: no test or run opens a port to the network. A forward
//! without a `host` port gets a free one when QEMU starts (`cargo xtask
//! run` prints it); two forwards may not name the same host or guest
//! port. Without any `[[nic]]` the machine has no network device at all
//! (QEMU would otherwise add its default one).

use serde::Deserialize;

use super::FieldResult;

/// The most interfaces an image may have.
pub const MAX_NICS: usize = 2;
/// The most forwarded ports per interface.
pub const MAX_FORWARDS: usize = 8;
/// The one model: the function `servers/virtio-net` drives.
pub const MODELS: [&str; 1] = ["virtio-net"];

/// A `[[nic]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNic {
    model: Option<String>,
    #[serde(default)]
    forward: Vec<RawForward>,
}

/// One `forward = [{ guest = 80, host = 8080 }]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    guest: Option<i64>,
    host: Option<i64>,
}

/// A TCP port of the guest reachable from the host's loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub guest: u16,
    /// The host's port on 127.0.0.1; `None`: a free one, chosen at boot.
    pub host: Option<u16>,
}

/// A validated interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    /// QEMU's netdev id: `net0`, `net1` by position.
    pub id: String,
    pub forwards: Vec<Forward>,
}

impl Nic {
    /// QEMU's arguments for this interface, with `hosts[i]` the host port
    /// of forward `i` (chosen already where the manifest left it open).
    ///
    /// The device is modern-only virtio (`disable-legacy=on`, PCI id
    /// 1af4:1041) and offers VIRTIO_F_ACCESS_PLATFORM (`iommu_platform=on`)
    /// for the reasons a disk does (see `Disk::qemu_args`). The MAC is
    /// QEMU's default prefix with the interface's number, so each boot's
    /// address is the same.
    pub fn qemu_args(&self, index: usize, hosts: &[u16]) -> [String; 4] {
        let mut netdev = format!("user,id={}", self.id);
        for (f, host) in self.forwards.iter().zip(hosts) {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{}", f.guest));
        }
        [
            "-netdev".to_string(),
            netdev,
            "-device".to_string(),
            format!(
                "virtio-net-pci,netdev={},mac=52:54:00:12:34:{:02x},disable-legacy=on,iommu_platform=on",
                self.id,
                0x56 + index
            ),
        ]
    }
}

fn port(value: i64) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("{value} is not a TCP port (1 to 65535)")),
    }
}

/// Checks the `[[nic]]` entries. On failure: the field and what is wrong.
pub(super) fn parse_nics(raw: Vec<RawNic>) -> FieldResult<Vec<Nic>> {
    if raw.len() > MAX_NICS {
        return Err((
            "nic".to_string(),
            format!(
                "{} [[nic]] entries; an image has at most {MAX_NICS}",
                raw.len()
            ),
        ));
    }
    let mut nics = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let field = |name: &str| format!("nic[{i}].{name}");
        if let Some(model) = &n.model
            && !MODELS.contains(&model.as_str())
        {
            return Err((
                field("model"),
                format!(
                    "'{model}' is not a model MH drives (known: {})",
                    MODELS.join(", ")
                ),
            ));
        }
        if n.forward.len() > MAX_FORWARDS {
            return Err((
                field("forward"),
                format!(
                    "{} ports; an interface forwards at most {MAX_FORWARDS}",
                    n.forward.len()
                ),
            ));
        }
        let mut forwards: Vec<Forward> = Vec::with_capacity(n.forward.len());
        for (j, f) in n.forward.iter().enumerate() {
            let field = |name: &str| format!("nic[{i}].forward[{j}].{name}");
            let guest = f
                .guest
                .ok_or_else(|| {
                    (
                        field("guest"),
                        "is missing: the guest's TCP port".to_string(),
                    )
                })
                .and_then(|g| port(g).map_err(|why| (field("guest"), why)))?;
            let host = match f.host {
                None => None,
                Some(h) => Some(port(h).map_err(|why| (field("host"), why))?),
            };
            if let Some(k) = forwards.iter().position(|o| o.guest == guest) {
                return Err((
                    field("guest"),
                    format!("port {guest} is forwarded already (forward[{k}])"),
                ));
            }
            if let Some(k) = forwards
                .iter()
                .position(|o| host.is_some() && o.host == host)
            {
                return Err((
                    field("host"),
                    format!("port {} is forward[{k}]'s already", host.unwrap_or(0)),
                ));
            }
            forwards.push(Forward { guest, host });
        }
        nics.push(Nic {
            id: format!("net{i}"),
            forwards,
        });
    }
    Ok(nics)
}
