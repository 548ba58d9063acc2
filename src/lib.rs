//! privlink-restart moves ECS agents onto AWS PrivateLink endpoints: it checks that every
//! endpoint a cluster needs exists and works, restarts the agents safely, and proves per
//! instance that they moved.
//!
//! The library holds the logic; `main.rs` is a thin binary around it. I/O lives at the
//! edges (`fleet::aws`, `report`), everything in between is plain data in, plain data out.

pub mod cli;
pub mod clock;
pub mod cutover;
pub mod demo;
pub mod exit;
pub mod fleet;
pub mod iam;
pub mod inventory;
pub mod journal;
pub mod lease;
pub mod plan;
pub mod preflight;
pub mod report;
pub mod rollout;
pub mod verify;
pub mod window;
