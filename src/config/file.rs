//! Reading a TOML config file into `Settings`, with errors a user can act
//! on: every unknown key at once, each with its line and the key it was
//! probably meant to be; a value of the wrong type named by its key and
//! line, in words rather than Rust's type names; a syntax error as toml
//! shows it, the line and a caret under the spot.

use std::path::Path;

use super::schema::Settings;
use super::ConfigError;

impl Settings {
    /// Reads a TOML config file; unknown keys are errors naming key and line.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            file: path.to_path_buf(),
            message,
        })
    }

    /// Every problem at once, one line each: unknown keys (with the key
    /// they were probably meant to be), then a value of the wrong type
    /// named by its key and line.
    pub fn from_toml(text: &str) -> Result<Settings, String> {
        // A syntax error keeps toml's own message: its line, the line's
        // text and a caret under the spot.
        let table: toml::Table =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let known = known_keys();
        let mut problems = Vec::new();
        for key in table.keys().filter(|k| !known.contains(k)) {
            let hint = closest(key, &known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            problems.push((line_of_key(text, key), format!("unknown key `{key}`{hint}")));
        }
        if !problems.is_empty() {
            problems.sort();
            let lines: Vec<String> = problems
                .into_iter()
                .map(|(line, p)| match line {
                    Some(n) => format!("line {n}: {p}"),
                    None => p,
                })
                .collect();
            return Err(lines.join("\n"));
        }
        toml::from_str(text).map_err(|e| plain_error(&e, text))
    }

    /// The file named by `--config` (if any) overridden by these flags:
    /// the settings `run` would use, before defaults and validation.
    pub fn with_config_file(self) -> Result<Settings, ConfigError> {
        match &self.config {
            Some(path) => Ok(Settings::from_file(path)?.overridden_by(self)),
            None => Ok(self),
        }
    }
}

/// The keys a config file may set, as serde knows them (from its own
/// "unknown field `x`, expected one of `a`, `b`" for a key no file has):
/// the list is written once, by the `Settings` struct.
fn known_keys() -> Vec<String> {
    let mut probe = toml::Table::new();
    probe.insert("\u{1}".into(), toml::Value::Integer(0));
    let Err(e) = toml::Value::Table(probe).try_into::<Settings>() else {
        return Vec::new();
    };
    let message = e.to_string();
    let Some((_, list)) = message.split_once("expected one of") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The known key nearest to `key` (a typo, a dash for an underscore), if
/// one is near enough to be what was meant.
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    let key = key.replace('-', "_").to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The line (1-based) where `key = ...` is set at the top level.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// A TOML error as a user reads it, on one line: its line (and the key
/// set there), and what it wants in words, not in Rust's type names.
fn plain_error(error: &toml::de::Error, text: &str) -> String {
    let message = error
        .message()
        .trim_end()
        .replace('\n', "; ")
        .replace("expected usize", "expected a whole number (0 or more)")
        .replace("expected u64", "expected a whole number (0 or more)")
        .replace("expected u32", "expected a whole number (0 or more)")
        .replace("expected u16", "expected a whole number (0 or more)")
        .replace("expected i64", "expected a whole number")
        .replace(
            "expected a sequence",
            "expected a list, e.g. [\"a\", \"b\"]",
        )
        .replace("expected a boolean", "expected true or false");
    let Some(span) = error.span() else {
        return message;
    };
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace));
    match key {
        Some(key) => format!("line {line}: {key}: {message}"),
        None => format!("line {line}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Settings::from_toml("workers = 2\nmax_request = 5\n").unwrap_err();
        assert!(err.contains("max_request"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn every_unknown_key_at_once_with_a_guess_and_no_rust_types() {
        let err = Settings::from_toml("wokers = 4\nroot = \"/srv\"\nmax-requests = 5\nzzz = 1\n")
            .unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines[0], "line 1: unknown key `wokers`; did you mean `workers`?",
            "{err}"
        );
        assert_eq!(
            lines[1], "line 3: unknown key `max-requests`; did you mean `max_requests`?",
            "{err}"
        );
        assert_eq!(lines[2], "line 4: unknown key `zzz`", "{err}");
        assert!(
            !err.contains("expected one of"),
            "the key list only on request: {err}"
        );
        let err = Settings::from_toml("root = \"/srv\"\nworkers = \"x\"\n").unwrap_err();
        assert_eq!(
            err, "line 2: workers: invalid type: string \"x\", expected a whole number (0 or more)",
            "{err}"
        );
    }

    #[test]
    fn toml_errors_keep_their_lines_and_one_root_is_a_list() {
        let err = Settings::from_toml("workers = 2\nworkers = [\n").unwrap_err();
        assert!(err.contains('\n') && err.contains('^'), "{err}");
        let one = Settings::from_toml("root = \"/srv/www\"\npreload = \"CGI\"\n").unwrap();
        assert_eq!(one.root, vec![PathBuf::from("/srv/www")]);
        assert_eq!(one.preload, vec!["CGI".to_string()]);
        let many = Settings::from_toml("root = [\"/a\", \"/b\"]\n").unwrap();
        assert_eq!(many.root.len(), 2);
    }
}
