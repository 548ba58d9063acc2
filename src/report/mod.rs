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
    humantime, next_step_line, render_estimate_human, render_event_json, render_plan_human,
    render_plan_json, render_summary_human, render_summary_json, ProgressView, SummaryRow, Timings,
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

/// `--color`: when human output uses colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

impl Colour {
    /// Colour only on a terminal, and never when `NO_COLOR` is set to anything but the
    /// empty string (https://no-color.org).
    pub fn for_terminal(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> Colour {
        let no_color = no_color.is_some_and(|value| !value.is_empty());
        if is_terminal && !no_color {
            Colour::On
        } else {
            Colour::Off
        }
    }

    /// What `--color` asks for: `always` and `never` win over the terminal and
    /// `NO_COLOR` (a flag on the command line is the more specific wish).
    pub fn chosen(
        choice: ColorChoice,
        is_terminal: bool,
        no_color: Option<&std::ffi::OsStr>,
    ) -> Colour {
        match choice {
            ColorChoice::Always => Colour::On,
            ColorChoice::Never => Colour::Off,
            ColorChoice::Auto => Colour::for_terminal(is_terminal, no_color),
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
        // An empty NO_COLOR is as good as none.
        assert_eq!(Colour::for_terminal(true, Some(OsStr::new(""))), Colour::On);
    }

    #[test]
    fn the_color_flag_wins_over_the_terminal_and_no_color() {
        let no = Some(OsStr::new("1"));
        let cases = [
            (ColorChoice::Auto, true, None, Colour::On),
            (ColorChoice::Auto, true, no, Colour::Off),
            (ColorChoice::Auto, false, None, Colour::Off),
            (ColorChoice::Always, false, no, Colour::On),
            (ColorChoice::Never, true, None, Colour::Off),
        ];
        for (choice, terminal, no_color, expected) in cases {
            assert_eq!(
                Colour::chosen(choice, terminal, no_color),
                expected,
                "{choice:?} {terminal} {no_color:?}"
            );
        }
    }
}
