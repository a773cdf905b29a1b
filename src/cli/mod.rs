//! The auditor's commands, built on [`crate::draw`] and [`crate::attest`] alone so that
//! they compile without the server stack (`cargo build --no-default-features`).
//!
//! Exit codes are shared: 0 when everything matches, 1 when a published value differs,
//! 2 when the input cannot be read or is malformed.

pub mod attestation;
pub mod audit_log;
pub mod draw;
pub mod verify;

use std::io::Read as _;
use std::process::ExitCode;

/// Everything matched.
pub const EXIT_OK: u8 = 0;
/// A published value differs from its re-computation.
pub const EXIT_MISMATCH: u8 = 1;
/// The input could not be read or is malformed.
pub const EXIT_MALFORMED: u8 = 2;

/// Reads a whole file, or standard input for `-`.
pub fn read_input(path: &str) -> Result<Vec<u8>, String> {
    if path == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(data)
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
    }
}

/// Prints `message` as the command's error and returns the "malformed" exit code.
pub fn malformed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tirage: {message}");
    ExitCode::from(EXIT_MALFORMED)
}
