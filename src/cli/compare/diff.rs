//! What `compare` compares, and how it shows a difference.
//!
//! The two sides are compared as bytes: the raw CGI response (headers,
//! blank line, body) of the plain CGI process and of the daemon, after the
//! user's `--mask` patterns. The one thing normalised is a script that
//! printed nothing: a CGI server answers that with its own 500 page and so
//! does the daemon, so both become the same placeholder. A difference is
//! shown as a unified diff of lines made visible (a `\r`, control
//! characters and bytes that are not UTF-8 escaped, a missing final
//! newline said), cut to a readable size.

use std::collections::BTreeSet;

use regex::bytes::Regex;
use similar::{capture_diff_slices, group_diff_ops, Algorithm, DiffOp, DiffTag};

/// What both sides become when the script printed nothing.
pub const NO_OUTPUT: &[u8] = b"[no output: the web server answers 500]\n";
/// Context lines around a change.
const CONTEXT: usize = 3;
/// Lines of diff output shown at most; the rest is counted.
const MAX_DIFF_LINES: usize = 200;
/// Characters of one line shown at most.
const MAX_LINE: usize = 400;

/// The `--mask` patterns: every match becomes `<masked>` on both sides.
#[derive(Debug, Default)]
pub struct Masks(Vec<Regex>);

impl Masks {
    pub fn new(patterns: &[String]) -> anyhow::Result<Masks> {
        patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| anyhow::anyhow!("--mask {p:?}: {e}")))
            .collect::<anyhow::Result<_>>()
            .map(Masks)
    }

    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for re in &self.0 {
            out = re.replace_all(&out, &b"<masked>"[..]).into_owned();
        }
        out
    }
}

/// The plain CGI side as compared.
pub fn plain_cgi_text(stdout: &[u8], masks: &Masks) -> Vec<u8> {
    if stdout.is_empty() {
        return NO_OUTPUT.to_vec();
    }
    masks.apply(stdout)
}

/// The persistent side as compared: the daemon's own 500 page for a script
/// that printed nothing is the placeholder.
pub fn persistent_text(stdout: &[u8], masks: &Masks) -> Vec<u8> {
    if stdout == crate::cgi::error_page((500, "Internal Server Error")) {
        return NO_OUTPUT.to_vec();
    }
    masks.apply(stdout)
}

/// One line made visible; `ended` says whether a newline followed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Line {
    text: String,
    ended: bool,
}

fn lines(bytes: &[u8]) -> Vec<Line> {
    let mut out: Vec<Line> = bytes
        .split_inclusive(|b| *b == b'\n')
        .map(|l| match l.strip_suffix(b"\n") {
            Some(l) => Line {
                text: visible(l),
                ended: true,
            },
            None => Line {
                text: visible(l),
                ended: false,
            },
        })
        .collect();
    if out.is_empty() {
        out.push(Line {
            text: String::new(),
            ended: false,
        });
    }
    out
}

/// Text as is, except `\r`, other control characters (tab aside) and bytes
/// that are not UTF-8, which are escaped.
fn visible(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\r' => s.push_str("\\r"),
                '\t' => s.push('\t'),
                c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// A long line cut to `MAX_LINE` characters, around the first place it
/// differs from `other` when there is one.
fn shown(text: &str, other: Option<&str>) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= MAX_LINE {
        return text.to_string();
    }
    let first_difference = other
        .map(|o| {
            chars
                .iter()
                .zip(o.chars())
                .take_while(|(a, b)| **a == *b)
                .count()
        })
        .unwrap_or(0);
    let start = first_difference.saturating_sub(MAX_LINE / 4);
    let end = (start + MAX_LINE).min(chars.len());
    let mut s = String::new();
    if start > 0 {
        s.push_str(&format!("...({start} characters) "));
    }
    s.extend(&chars[start..end]);
    if end < chars.len() {
        s.push_str(&format!(" ...({} more characters)", chars.len() - end));
    }
    s
}

fn ops(old: &[Line], new: &[Line]) -> Vec<DiffOp> {
    capture_diff_slices(Algorithm::Myers, old, new)
}

/// A unified diff from `old` to `new` (empty when they are equal).
pub fn unified(old: &[u8], new: &[u8], old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    let (a, b) = (lines(old), lines(new));
    let mut out = vec![format!("--- {old_name}"), format!("+++ {new_name}")];
    let mut printed = 0;
    let mut hidden = 0;
    let mut push = |out: &mut Vec<String>, line: String| {
        if printed < MAX_DIFF_LINES {
            out.push(line);
            printed += 1;
        } else {
            hidden += 1;
        }
    };
    for group in group_diff_ops(ops(&a, &b), CONTEXT) {
        push(
            &mut out,
            similar::udiff::UnifiedHunkHeader::new(&group).to_string(),
        );
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            let line = |sign: char, l: &Line, other: Option<&Line>| {
                let mut s = format!("{sign}{}", shown(&l.text, other.map(|o| o.text.as_str())));
                if !l.ended {
                    s.push_str("\n\\ No newline at end of file");
                }
                s
            };
            match tag {
                DiffTag::Equal => {
                    for i in old_range {
                        push(&mut out, line(' ', &a[i], None));
                    }
                }
                DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => {
                    for (k, i) in old_range.clone().enumerate() {
                        push(&mut out, line('-', &a[i], b.get(new_range.start + k)));
                    }
                    for (k, i) in new_range.clone().enumerate() {
                        push(&mut out, line('+', &b[i], a.get(old_range.start + k)));
                    }
                }
            }
        }
    }
    if hidden > 0 {
        out.push(format!("... ({hidden} more lines of diff)"));
    }
    out.join("\n") + "\n"
}

/// The lines of `old` where `new` differs from it (for an insertion, the
/// line it comes before).
pub fn changed_lines(old: &[u8], new: &[u8]) -> BTreeSet<usize> {
    let (a, b) = (lines(old), lines(new));
    let mut changed = BTreeSet::new();
    for op in ops(&a, &b) {
        let (tag, old_range, _) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => {}
            DiffTag::Insert => {
                changed.insert(old_range.start);
            }
            DiffTag::Delete | DiffTag::Replace => changed.extend(old_range),
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified(b"a\nb\n", b"a\nb\n", "x", "y"), "");
        assert!(changed_lines(b"a\nb\n", b"a\nb\n").is_empty());
    }

    #[test]
    fn a_changed_line_in_unified_format() {
        let old = b"Content-Type: text/plain\r\n\r\nn=1\nend\n";
        let new = b"Content-Type: text/plain\r\n\r\nn=2\nend\n";
        let d = unified(old, new, "plain CGI", "registry, run 2");
        assert_eq!(
            d,
            "--- plain CGI\n+++ registry, run 2\n@@ -1,4 +1,4 @@\n \
             Content-Type: text/plain\\r\n \\r\n-n=1\n+n=2\n end\n"
        );
        assert_eq!(changed_lines(old, new), BTreeSet::from([2]));
    }

    #[test]
    fn a_missing_final_newline_and_odd_bytes_are_visible() {
        let d = unified(b"x\n", b"x", "a", "b");
        assert!(d.contains("-x\n+x\n\\ No newline at end of file"), "{d}");
        let d = unified(b"caf\xc3\xa9 \x01\xff\n", b"\n", "a", "b");
        assert!(d.contains("-café \\x01\\xff\n"), "{d}");
    }

    #[test]
    fn hunks_keep_three_lines_of_context() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new = old.replace("10\n", "ten\n");
        let d = unified(old.as_bytes(), new.as_bytes(), "a", "b");
        assert!(
            d.contains("@@ -7,7 +7,7 @@\n 7\n 8\n 9\n-10\n+ten\n 11\n 12\n 13\n"),
            "{d}"
        );
        assert!(!d.contains(" 6\n") && !d.contains(" 14\n"), "{d}");
    }

    #[test]
    fn a_long_line_is_shown_around_its_difference() {
        let old = format!("{}A{}\n", "x".repeat(2000), "y".repeat(2000));
        let new = format!("{}B{}\n", "x".repeat(2000), "y".repeat(2000));
        let d = unified(old.as_bytes(), new.as_bytes(), "a", "b");
        let minus = d
            .lines()
            .find(|l| l.starts_with('-') && !l.starts_with("---"))
            .unwrap();
        assert!(
            minus.contains("xA") && minus.contains("...(1900 characters)"),
            "{minus}"
        );
        assert!(minus.chars().count() < 500, "{}", minus.len());
    }

    #[test]
    fn a_huge_diff_is_cut() {
        let old: String = (0..1000).map(|i| format!("{i}\n")).collect();
        let d = unified(old.as_bytes(), b"", "a", "b");
        assert!(
            d.lines().count() < MAX_DIFF_LINES + 5,
            "{}",
            d.lines().count()
        );
        assert!(d.ends_with("more lines of diff)\n"), "{d}");
    }

    #[test]
    fn masks_apply_to_both_sides_and_no_output_is_one_placeholder() {
        let masks = Masks::new(&[r"process \d+".into()]).unwrap();
        assert_eq!(
            plain_cgi_text(b"pid: process 123\n", &masks),
            persistent_text(b"pid: process 98765\n", &masks)
        );
        assert_eq!(plain_cgi_text(b"", &masks), NO_OUTPUT);
        let daemon_500 = crate::cgi::error_page((500, "Internal Server Error"));
        assert_eq!(persistent_text(&daemon_500, &masks), NO_OUTPUT);
        assert_ne!(persistent_text(b"Status: 500\r\n\r\n", &masks), NO_OUTPUT);
        let e = Masks::new(&["(".into()]).unwrap_err().to_string();
        assert!(e.starts_with("--mask \"(\""), "{e}");
    }
}
