//! A manifest's `[expect]` table: how a self-test image must end (the QEMU
//! outcome), the lines its serial output must contain, and what to type
//! into its serial line on the way.
//!
//! Rules: as for the rest of the manifest, unknown fields are errors and a
//! bad value is reported with its field (`expect.outcome`,
//! `expect.input[1].after`).

use serde::Deserialize;

use super::FieldResult;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    outcome: String,
    #[serde(default)]
    output: Vec<String>,
    #[serde(default)]
    input: Vec<RawInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    after: String,
    text: String,
    host: Option<String>,
}

/// How a self-test image must end: the QEMU outcome and lines of text the
/// serial output must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub outcome: ExpectedOutcome,
    pub output: Vec<String>,
    /// What to type on the serial line, in stages: each once a line of
    /// output contains its `after` (so the guest is ready to read it), in
    /// order.
    pub input: Vec<Input>,
}

/// Text typed into the guest's serial line during a headless run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub after: String,
    pub bytes: Vec<u8>,
    /// Checks xtask runs from the host before it types (`host = "http"`).
    pub host: Option<HostCheck>,
}

/// A check run from the host against the booted image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostCheck {
    /// HTTP against the guest's port 80 through its forward
    /// (`nettest::http`).
    Http,
}

/// The outcomes a self-test image can expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedOutcome {
    Clean,
    InitFailed,
    KernelPanic,
}

/// Validates an `[expect]` table.
pub(super) fn parse(e: RawExpect) -> FieldResult<Expect> {
    let outcome = match e.outcome.as_str() {
        "clean" => ExpectedOutcome::Clean,
        "init-failed" => ExpectedOutcome::InitFailed,
        "kernel-panic" => ExpectedOutcome::KernelPanic,
        other => {
            return Err((
                "expect.outcome".into(),
                format!("'{other}' is not one of clean, init-failed, kernel-panic"),
            ));
        }
    };
    let mut input = Vec::new();
    for (k, stage) in e.input.into_iter().enumerate() {
        if stage.after.is_empty() {
            return Err((
                format!("expect.input[{k}].after"),
                "is empty: name a piece of the output line after which to type".into(),
            ));
        }
        let host = match stage.host.as_deref() {
            None => None,
            Some("http") => Some(HostCheck::Http),
            Some(other) => {
                return Err((
                    format!("expect.input[{k}].host"),
                    format!("'{other}' is not a host check (known: http)"),
                ));
            }
        };
        input.push(Input {
            after: stage.after,
            bytes: stage.text.into_bytes(),
            host,
        });
    }
    Ok(Expect {
        outcome,
        output: e.output,
        input,
    })
}
