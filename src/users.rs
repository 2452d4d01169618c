//! Who this process runs as, for messages about what it may not do.

/// The name of the effective user (after `--user`, the workers' user), or
/// `uid N` when it has none.
pub fn current_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
}
