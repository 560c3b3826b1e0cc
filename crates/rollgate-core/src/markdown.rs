//! Text that came from people or models, made safe to put in Markdown.

/// Markdown's special characters escaped and line breaks flattened, so a
/// reason or a summary reads as written (in a table cell too) and never
/// becomes markup.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '|') {
            out.push('\\');
        }
        out.push(if c == '\n' { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped_and_lines_flattened() {
        assert_eq!(super::escape("<b>a|b</b>\n*x*"), "\\<b\\>a\\|b\\</b\\> \\*x\\*");
    }
}
