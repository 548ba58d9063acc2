//! Exit codes, documented in `--help` and the README.

/// Done, or ready (warnings allowed).
pub const OK: i32 = 0;
/// At least one blocking finding.
pub const BLOCKED: i32 = 1;
/// Usage, configuration or AWS access error.
pub const USAGE: i32 = 2;
