//! Which file a request may run (SPEC §7).
//!
//! The web server names the script in `SCRIPT_FILENAME`; before any Perl
//! runs, the name is normalised (Apache's `proxy:fcgi://host:port/` prefix),
//! resolved (symlinks, `..`) and only then checked against the allowed roots
//! and extensions, so a link or a `../` cannot lead outside them.
//!
//! Resolving a path costs a system call per component, every request; like
//! php-fpm's realpath cache, answers are kept for `CACHE_TTL`, so a changed
//! symlink or a new file is seen within that time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to do with a request's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptCheck {
    /// Run this (resolved) file; `path_info` is set when the requested name
    /// continued past the file (`/app.pl/extra` → `/extra`).
    Run {
        script: PathBuf,
        path_info: Option<Vec<u8>>,
    },
    /// 404: nothing there.
    NotFound,
    /// 403, with the reason for the log.
    Forbidden(String),
}

/// The allowed roots (resolved at start-up) and extensions.
/// How long a resolved SCRIPT_FILENAME is trusted.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries kept at most; the cache starts over when full.
const CACHE_SIZE: usize = 4096;

#[derive(Debug, Clone)]
pub struct PathPolicy {
    roots: Vec<PathBuf>,
    extensions: Vec<String>,
    /// `deny` globs, matched against the resolved path.
    deny: Vec<glob::Pattern>,
    /// A script must be executable by this process, as `exec` under CGI
    /// wants it (off: `ignore_exec_bit`).
    require_exec: bool,
    cache: RefCell<HashMap<Vec<u8>, (Instant, ScriptCheck)>>,
}

impl PathPolicy {
    /// `roots` empty means any directory. Extensions are given with or
    /// without the dot; an empty list allows any extension.
    pub fn new(roots: Vec<PathBuf>, extensions: &[String]) -> PathPolicy {
        let extensions = extensions
            .iter()
            .map(|e| e.trim().trim_start_matches('.').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        PathPolicy {
            roots,
            extensions,
            deny: Vec::new(),
            require_exec: false,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The policy of a configuration: its roots, extensions, `deny` globs
    /// and whether scripts need the exec bit.
    pub fn of(cfg: &crate::config::Config) -> PathPolicy {
        PathPolicy {
            deny: cfg.deny.clone(),
            require_exec: !cfg.ignore_exec_bit,
            ..PathPolicy::new(cfg.roots.clone(), &cfg.extensions)
        }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Checks the `SCRIPT_FILENAME` param of a request (cached for
    /// `CACHE_TTL`).
    pub fn check(&self, script_filename: &[u8]) -> ScriptCheck {
        let now = Instant::now();
        if let Some((at, answer)) = self.cache.borrow().get(script_filename) {
            if now.duration_since(*at) < CACHE_TTL {
                return answer.clone();
            }
        }
        let answer = self.check_uncached(script_filename);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(script_filename.to_vec(), (now, answer.clone()));
        answer
    }

    fn check_uncached(&self, script_filename: &[u8]) -> ScriptCheck {
        let requested = normalize_script_filename(script_filename);
        if requested.as_os_str().is_empty() || !requested.is_absolute() {
            return ScriptCheck::Forbidden(format!(
                "SCRIPT_FILENAME {:?} is not an absolute path (set fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name)",
                requested
            ));
        }
        let (file, path_info) = match split_existing_prefix(&requested) {
            Ok(Some(split)) => split,
            Ok(None) => return ScriptCheck::NotFound,
            Err(denied) => return permission_denied(&denied),
        };
        let resolved = match std::fs::canonicalize(&file) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return permission_denied(&file)
            }
            Err(_) => return ScriptCheck::NotFound,
        };
        let answer = self.check_resolved(resolved, path_info);
        match &answer {
            ScriptCheck::Run { script, .. } if self.require_exec && !executable(script) => {
                ScriptCheck::Forbidden(format!(
                    "{} is not executable: under CGI it would not run either \
                     (chmod +x it, or set ignore_exec_bit = true for a tree that never had exec bits)",
                    script.display()
                ))
            }
            _ => answer,
        }
    }

    /// The pure part of the check, on an already resolved path.
    fn check_resolved(&self, resolved: PathBuf, path_info: Option<Vec<u8>>) -> ScriptCheck {
        if !self.roots.is_empty() && !self.roots.iter().any(|r| resolved.starts_with(r)) {
            return ScriptCheck::Forbidden(format!(
                "{} is outside the allowed roots ({})",
                resolved.display(),
                self.roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        if let Some(glob) = self
            .deny
            .iter()
            .find(|g| g.matches_path_with(&resolved, options))
        {
            return ScriptCheck::Forbidden(format!(
                "{} matches deny = {:?}",
                resolved.display(),
                glob.as_str()
            ));
        }
        if !self.extension_allowed(&resolved) {
            return ScriptCheck::Forbidden(format!(
                "{} does not have an allowed extension (.{})",
                resolved.display(),
                self.extensions.join(", .")
            ));
        }
        ScriptCheck::Run {
            script: resolved,
            path_info,
        }
    }

    /// Whether the file name has one of the allowed extensions.
    pub fn extension_allowed(&self, path: &Path) -> bool {
        if self.extensions.is_empty() {
            return true;
        }
        match path.extension().and_then(OsStr::to_str) {
            Some(ext) => self.extensions.iter().any(|e| e == ext),
            None => false,
        }
    }
}

/// May this process `exec` the file (what CGI does with a script)?
fn executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Strips Apache mod_proxy_fcgi's `proxy:fcgi://host:port` prefix (and a
/// query string it may leave on the name).
pub fn normalize_script_filename(raw: &[u8]) -> PathBuf {
    let mut name = raw;
    if let Some(rest) = name.strip_prefix(b"proxy:fcgi://") {
        name = match rest.iter().position(|&b| b == b'/') {
            Some(slash) => &rest[slash..],
            None => b"",
        };
        if let Some(q) = name.iter().position(|&b| b == b'?') {
            name = &name[..q];
        }
    }
    PathBuf::from(OsStr::from_bytes(name))
}

/// The script file, and what of the requested name continued past it.
type ScriptAndPathInfo = (PathBuf, Option<Vec<u8>>);

/// 403: a directory on the way (or the file) is closed to this process's
/// user. Under CGI the server cannot run it either; it is not "not found".
fn permission_denied(path: &Path) -> ScriptCheck {
    let user = crate::users::current_name();
    ScriptCheck::Forbidden(format!(
        "permission denied for {user}: cannot reach {} (a directory on the way is not searchable by {user}, or the file not readable)",
        path.display()
    ))
}

/// Finds the longest existing regular-file prefix of `requested`; the rest
/// becomes PATH_INFO. `Ok(None)` when no prefix is a file; `Err(path)` when
/// this process may not look: a directory on the way it cannot search.
fn split_existing_prefix(requested: &Path) -> Result<Option<ScriptAndPathInfo>, PathBuf> {
    match std::fs::metadata(requested) {
        Ok(m) if m.is_file() => return Ok(Some((requested.to_path_buf(), None))),
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(requested.to_path_buf())
        }
        Err(_) => {}
    }
    let mut candidate = requested.to_path_buf();
    while candidate.pop() {
        if candidate.as_os_str().len() <= 1 {
            break;
        }
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() => {
                let rest = &requested.as_os_str().as_bytes()[candidate.as_os_str().len()..];
                return Ok(Some((candidate, Some(rest.to_vec()))));
            }
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Err(candidate),
            Err(_) => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(roots: &[&str], exts: &[&str]) -> PathPolicy {
        PathPolicy::new(
            roots.iter().map(PathBuf::from).collect(),
            &exts.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn apache_proxy_prefix_is_stripped() {
        assert_eq!(
            normalize_script_filename(b"proxy:fcgi://127.0.0.1:9000/var/www/a.pl"),
            PathBuf::from("/var/www/a.pl")
        );
        assert_eq!(
            normalize_script_filename(b"proxy:fcgi://localhost/srv/x.cgi?a=1"),
            PathBuf::from("/srv/x.cgi")
        );
        assert_eq!(
            normalize_script_filename(b"/plain/b.pl"),
            PathBuf::from("/plain/b.pl")
        );
    }

    #[test]
    fn roots_and_extensions_are_enforced_on_resolved_paths() {
        let p = policy(&["/srv/www"], &[".pl", "cgi"]);
        assert!(matches!(
            p.check_resolved(PathBuf::from("/srv/www/a.pl"), None),
            ScriptCheck::Run { .. }
        ));
        assert!(matches!(
            p.check_resolved(PathBuf::from("/srv/www/sub/b.cgi"), None),
            ScriptCheck::Run { .. }
        ));
        assert!(matches!(
            p.check_resolved(PathBuf::from("/srv/wwwx/a.pl"), None),
            ScriptCheck::Forbidden(_)
        ));
        assert!(matches!(
            p.check_resolved(PathBuf::from("/srv/www/a.txt"), None),
            ScriptCheck::Forbidden(_)
        ));
        assert!(matches!(
            p.check_resolved(PathBuf::from("/srv/www/noext"), None),
            ScriptCheck::Forbidden(_)
        ));
    }

    #[test]
    fn deny_globs_refuse_matching_paths() {
        let mut p = policy(&["/srv/www"], &[".pl"]);
        p.deny = vec![glob::Pattern::new("/srv/www/**/lib/**").unwrap()];
        assert!(matches!(
            p.check_resolved(PathBuf::from("/srv/www/app/lib/Util.pl"), None),
            ScriptCheck::Forbidden(why) if why.contains("deny")
        ));
        assert!(matches!(
            p.check_resolved(PathBuf::from("/srv/www/app/index.pl"), None),
            ScriptCheck::Run { .. }
        ));
    }

    #[test]
    fn answers_are_cached_for_the_ttl() {
        let dir = std::env::temp_dir().join(format!("fs-policy-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = std::fs::canonicalize(&dir).unwrap();
        let script = dir.join("c.pl");
        std::fs::write(&script, "1;").unwrap();
        let p = PathPolicy::new(vec![dir.clone()], &[".pl".to_string()]);
        let name = script.as_os_str().as_bytes().to_vec();
        assert!(matches!(p.check(&name), ScriptCheck::Run { .. }));
        std::fs::remove_file(&script).unwrap();
        assert!(
            matches!(p.check(&name), ScriptCheck::Run { .. }),
            "cached within the TTL"
        );
        assert_eq!(p.check_uncached(&name), ScriptCheck::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlink_and_dotdot_escape_is_forbidden() {
        let dir = std::env::temp_dir().join(format!("fs-policy-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(dir.join("secret.pl"), "1;").unwrap();
        std::fs::write(root.join("ok.pl"), "1;").unwrap();
        let _ = std::fs::remove_file(root.join("link.pl"));
        std::os::unix::fs::symlink(dir.join("secret.pl"), root.join("link.pl")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let p = PathPolicy::new(vec![root.clone()], &[".pl".to_string()]);
        let bytes = |p: PathBuf| p.as_os_str().as_bytes().to_vec();
        assert!(matches!(
            p.check(&bytes(root.join("ok.pl"))),
            ScriptCheck::Run { .. }
        ));
        assert!(matches!(
            p.check(&bytes(root.join("link.pl"))),
            ScriptCheck::Forbidden(_)
        ));
        assert!(matches!(
            p.check(&bytes(root.join("../secret.pl"))),
            ScriptCheck::Forbidden(_)
        ));
        assert_eq!(
            p.check(&bytes(root.join("missing.pl"))),
            ScriptCheck::NotFound
        );
        match p.check(&bytes(root.join("ok.pl/extra/info"))) {
            ScriptCheck::Run { script, path_info } => {
                assert_eq!(script, root.join("ok.pl"));
                assert_eq!(path_info.as_deref(), Some(&b"/extra/info"[..]));
            }
            other => panic!("expected Run, got {other:?}"),
        }
        assert!(matches!(p.check(b"relative.pl"), ScriptCheck::Forbidden(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_script_needs_the_exec_bit_unless_told_otherwise() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fcgi-spawn-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("off.pl");
        std::fs::write(&script, "print 1;\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let root = std::fs::canonicalize(&dir).unwrap();
        let strict = PathPolicy {
            require_exec: true,
            ..PathPolicy::new(vec![root.clone()], &[".pl".into()])
        };
        let name = script.as_os_str().as_bytes();
        match strict.check(name) {
            ScriptCheck::Forbidden(why) => assert!(why.contains("not executable"), "{why}"),
            other => panic!("a 0644 script runs: {other:?}"),
        }
        let lenient = PathPolicy::new(vec![root], &[".pl".into()]);
        assert!(matches!(lenient.check(name), ScriptCheck::Run { .. }));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        strict.cache.borrow_mut().clear();
        assert!(matches!(strict.check(name), ScriptCheck::Run { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
