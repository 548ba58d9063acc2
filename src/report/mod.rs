//! Turning results into what people and pipelines read: a human report (with colour only
//! on a terminal that wants it) or one versioned JSON document. Rendering is into a
//! `String`, so tests read exactly what a user would.

mod check;
mod rollout;
mod text;
mod verify;

use clap::ValueEnum;

pub use check::{render_check_human, render_check_json, CheckReport};
pub use rollout::{
    humantime, render_estimate_human, render_event_json, render_plan_human, render_plan_json,
    render_summary_human, render_summary_json, ProgressView, SummaryRow, Timings,
};
pub use verify::{render_verify_human, render_verify_json};

/// The version of every JSON document this tool writes; bumped on incompatible changes.
pub const JSON_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// Whether human output uses ANSI colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    On,
    Off,
}

impl Colour {
    /// Colour only on a terminal, and never when `NO_COLOR` is set (https://no-color.org).
    pub fn for_terminal(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> Colour {
        match (is_terminal, no_color) {
            (true, None) => Colour::On,
            _ => Colour::Off,
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Colour::On => format!("\x1b[{code}m{text}\x1b[0m"),
            Colour::Off => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert_eq!(Colour::for_terminal(true, None), Colour::On);
        assert_eq!(Colour::for_terminal(false, None), Colour::Off);
        assert_eq!(
            Colour::for_terminal(true, Some(OsStr::new("1"))),
            Colour::Off
        );
        assert_eq!(
            Colour::for_terminal(true, Some(OsStr::new(""))),
            Colour::Off
        );
    }
}
