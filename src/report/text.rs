//! Line wrapping for the human report, so it reads at 100 columns.

/// The report's width.
pub(crate) const WIDTH: usize = 100;

/// Wraps prose at word boundaries, every line starting with `indent`.
pub(crate) fn wrap(text: &str, indent: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.chars().count() > WIDTH {
            lines.push(format!("{indent}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{indent}{line}"));
    }
    lines
}

/// Up to six ids, then how many more, so a wave of 500 still fits a line.
pub(crate) fn some_ids(ids: &[String]) -> String {
    const SHOWN: usize = 6;
    if ids.len() <= SHOWN {
        ids.join(" ")
    } else {
        format!("{} +{} more", ids[..SHOWN].join(" "), ids.len() - SHOWN)
    }
}

/// Wraps a shell command with ` \` continuations, so it stays copy-pasteable.
pub(crate) fn wrap_command(command: &str, first_indent: &str, indent: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut current_indent = first_indent;
    for word in command.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty()
            && current_indent.len() + line.len() + 1 + word.chars().count() + 2 > WIDTH
        {
            lines.push(format!("{current_indent}{line} \\"));
            line.clear();
            current_indent = indent;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{current_indent}{line}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_prose_fits_and_keeps_every_word() {
        let text = "word ".repeat(60);
        let lines = wrap(&text, "    ");
        assert!(lines.len() > 1);
        assert!(lines
            .iter()
            .all(|l| l.chars().count() <= WIDTH && l.starts_with("    ")));
        assert_eq!(lines.join(" ").split_whitespace().count(), 60);
    }

    #[test]
    fn wrapped_command_continues_with_backslashes() {
        let command = format!(
            "aws ec2 create-vpc-endpoint {}",
            "--subnet-ids subnet-0123456789abcdef0 ".repeat(6)
        );
        let lines = wrap_command(command.trim(), "  fix: ", "       ");
        assert!(lines.len() > 1);
        assert!(
            lines.iter().all(|l| l.chars().count() <= WIDTH),
            "{lines:#?}"
        );
        assert!(lines[..lines.len() - 1].iter().all(|l| l.ends_with(" \\")));
        let rejoined: String = lines
            .iter()
            .map(|l| l.trim().trim_end_matches('\\').trim())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(rejoined.trim_start_matches("fix: "), command.trim());
    }
}
