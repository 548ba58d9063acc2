//! Exit codes, documented in `--help` and the README.

/// Done, or ready (warnings allowed).
pub const OK: i32 = 0;
/// At least one blocking finding.
pub const BLOCKED: i32 = 1;
/// Usage, configuration or AWS access error.
pub const USAGE: i32 = 2;
/// Stopped early on purpose (interrupt, lease lost, out of `--window`/`--deadline` time)
/// and resumable with `--resume`; or not started because of the time limits.
pub const STOPPED: i32 = 3;
/// Another run holds the cluster's lease.
pub const LEASE_HELD: i32 = 4;
/// A second Ctrl-C: out at once, the journal intact.
pub const ABORTED: i32 = 130;
