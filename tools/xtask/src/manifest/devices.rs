//! The manifest's device names: a module's `devices` list (its name
//! scope) and the names modules register.
//!
//! Rules: a name is checked as the kernel's registry will check it
//! (`abi::bus`), so a name the kernel would refuse is a manifest error
//! naming the field, not a failure at boot; and every name a module may
//! attach must exist in the image, so a typo in `devices` is caught before
//! the build rather than found as an `AccessDenied` at run time.

use super::{FieldResult, KERNEL_DEVICES, Module};

/// Checks one module's `devices` list on its own: device names, no
/// commas (the loader option separates them with commas), no repeats, at
/// most `abi::bus::NAME_SCOPE_MAX`.
pub(super) fn check_devices(field: &str, devices: &[String]) -> FieldResult {
    if devices.len() > abi::bus::NAME_SCOPE_MAX {
        return Err((
            field.to_string(),
            format!(
                "lists {} devices; a process's name scope holds at most {}",
                devices.len(),
                abi::bus::NAME_SCOPE_MAX
            ),
        ));
    }
    for (k, name) in devices.iter().enumerate() {
        let why = check_device_name(name)
            .err()
            .or_else(|| name.contains(',').then_some("contains ','"))
            .or_else(|| devices[..k].contains(name).then_some("is listed twice"));
        if let Some(why) = why {
            return Err((format!("{field}[{k}]"), format!("'{name}' {why}")));
        }
    }
    Ok(())
}

/// Every name a module lists in `devices` must be one that exists in this
/// image: a kernel device, `init` (when init is servers/init, which
/// registers it) or a name some module `registers`. Drivers (`system`)
/// are exempt: they name the hardware devices they make themselves.
pub(super) fn check_device_sources(modules: &[Module]) -> FieldResult {
    let init_registers = modules.first().is_some_and(|m| m.binary == "init");
    for (i, m) in modules.iter().enumerate() {
        let Some(devices) = m.devices.as_ref().filter(|_| !m.system) else {
            continue;
        };
        for (k, name) in devices.iter().enumerate() {
            let known = KERNEL_DEVICES.contains(&name.as_str())
                || (init_registers && name == "init")
                || modules.iter().any(|o| o.registers_name(name));
            if !known {
                return Err((
                    format!("module[{i}].devices[{k}]"),
                    format!(
                        "'{name}' is no device of this image: not a kernel device ({}), \
                         not `init`, and no module `registers` it",
                        KERNEL_DEVICES.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks a device name as the kernel's registry will (`abi::bus`): 1 to
/// 32 bytes, no white space or control characters.
pub(super) fn check_device_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > abi::bus::DEVICE_NAME_MAX {
        return Err("is not 1 to 32 bytes long");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains white space or control characters");
    }
    if name.starts_with('@') {
        return Err("starts with '@'");
    }
    Ok(())
}
