//! End-to-end tests: the real binary against the AWS emulator (moto's server plus the
//! launcher in tests/support/emulator.py). One test binary, so the SDK links once.

mod bad_input;
mod check;
mod cutover;
mod docs;
mod durability;
mod fallback;
mod harness;
mod scale;
mod scenario;
mod verify;
