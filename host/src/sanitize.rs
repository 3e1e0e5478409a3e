//! One sanitiser for every string a script controls on its way to a terminal: log lines,
//! labels, phase titles, meta, error messages, results shown in views, the script itself in the
//! approval prompt. Control characters (C0, DEL, C1), and the bidirectional-text controls that
//! can reorder what a reader sees, are made visible instead of acting on the terminal: an
//! escape sequence cannot clear the screen, set the title, write the clipboard (OSC 52) or
//! redraw a line, and a carriage return cannot hide what comes before it.
//!
//! JSON outputs (`--json`, `--events`, the journal) keep the raw text: they are data, and a
//! consumer that prints them must do the same.

use std::borrow::Cow;

/// The bidirectional formatting characters (Trojan Source, CVE-2021-42574): embeddings,
/// overrides, isolates, and the implicit marks.
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn needs_escape(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' => !keep_newlines,
        '\t' => false,
        c if c.is_control() => true, // C0, DEL and C1
        c => is_bidi(c),
    }
}

fn visible(c: char, out: &mut String) {
    match c {
        // C0 controls have pictures: ␀ … ␟, and ␛ for ESC, ␍ for CR, ␤ for a newline.
        '\n' => out.push('␤'),
        '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + u32::from(c)).unwrap_or('�')),
        '\u{7f}' => out.push('␡'),
        c => out.push_str(&format!("<U+{:04X}>", u32::from(c))),
    }
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c, keep_newlines) {
            visible(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// For a single line (a label, a phase title, a log line): every control made visible, a
/// newline too.
pub(crate) fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// For text that may span lines (an error with its stack, a result): newlines kept, every
/// other control made visible.
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// True when `s` holds anything [`line`] would change besides newlines.
pub(crate) fn has_controls(s: &str) -> bool {
    s.chars().any(|c| needs_escape(c, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_made_visible() {
        assert_eq!(line("plain text"), "plain text");
        assert!(matches!(line("plain"), Cow::Borrowed(_)));
        assert_eq!(line("a\x1b[2Jb"), "a␛[2Jb");
        assert_eq!(line("ok\rforged"), "ok␍forged");
        assert_eq!(line("x\x07\x7f\u{9b}y"), "x␇␡<U+009B>y");
        assert_eq!(line("a\u{202E}cba"), "a<U+202E>cba");
        assert_eq!(line("two\nlines"), "two␤lines");
        assert_eq!(text("two\nlines\r"), "two\nlines␍");
        assert_eq!(line("tab\tok"), "tab\tok");
        assert!(has_controls("\x1b]52;c;ZXZpbA==\x07"));
        assert!(!has_controls("multi\nline\ttext"));
    }
}
