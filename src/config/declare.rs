//! The `settings!` macro: each setting is declared once, in `schema.rs`,
//! and this writes everything that only repeats its name and type.
//!
//! One declaration (doc comment, clap and serde attributes, name, type and
//! how it resolves) gives the key's field in `Settings` (the `run` flags and
//! the TOML file), its line in `Settings::overridden_by` (a flag wins over
//! the file), its field in `Config` with its default, and its value in
//! `Config::effective_settings` (`config --print`). A key whose resolution is
//! more than a default (parsed, checked against the system, several keys
//! making one value) is marked `=> derived`: it gets its `Settings` field
//! and its merge here, and `resolve.rs` writes the rest by hand, into the
//! `Config` fields listed under `derived`. Field order is declaration order,
//! which is the order of `--help` and of `config --print`.

/// How a flag and the file's value of one key combine: a flag that was
/// given wins. A switch is on when either turns it on; a list given on the
/// command line replaces the file's list.
pub trait Merge {
    fn merge(file: Self, flag: Self) -> Self;
}

impl<T> Merge for Option<T> {
    fn merge(file: Self, flag: Self) -> Self {
        flag.or(file)
    }
}

impl Merge for bool {
    fn merge(file: Self, flag: Self) -> Self {
        flag || file
    }
}

impl<T> Merge for Vec<T> {
    fn merge(file: Self, flag: Self) -> Self {
        if flag.is_empty() {
            file
        } else {
            flag
        }
    }
}

/// Declares `Settings`, `Config`, `Derived` (the `Config` fields
/// `resolve.rs` computes) and the code that moves values between them.
///
/// A key is one of:
/// - `name: T = default;` — `Option<T>` in `Settings`, `T` in `Config`,
///   `default` when neither the file nor a flag sets it;
/// - `name: T;` — the same type in both, as given (`Option<_>`, `bool`,
///   `Vec<_>`), checked if at all by `resolve::derive`;
/// - `name: T => derived;` — only in `Settings`; `resolve::derive` makes
///   the `Config` value and `resolve::show_derived` shows it.
///
/// Every key is `#[serde(default)]`; its other attributes are its own.
macro_rules! settings {
    (
        $(#[$settings_attr:meta])*
        keys { $($keys:tt)* }
        derived { $($derived:tt)* }
    ) => {
        settings!(@key [$($keys)*]
            settings_doc [$(#[$settings_attr])*]
            settings [] config [] defaults [] given [] names []
            derived [$($derived)*]);
    };

    // A key resolved by hand.
    (@key [$(#[$attr:meta])* $name:ident : $ty:ty => derived; $($rest:tt)*]
        settings_doc $sd:tt
        settings [$($settings:tt)*]
        config $config:tt defaults $defaults:tt given $given:tt
        names [$($names:ident)*] derived $derived:tt
    ) => {
        settings!(@key [$($rest)*]
            settings_doc $sd
            settings [$($settings)* $(#[$attr])* #[serde(default)] pub $name: $ty,]
            config $config defaults $defaults given $given
            names [$($names)* $name] derived $derived);
    };

    // A key with a default.
    (@key [$(#[$attr:meta])* $name:ident : $ty:ty = $default:expr; $($rest:tt)*]
        settings_doc $sd:tt
        settings [$($settings:tt)*]
        config [$($config:tt)*]
        defaults [$($defaults:tt)*]
        given $given:tt
        names [$($names:ident)*] derived $derived:tt
    ) => {
        settings!(@key [$($rest)*]
            settings_doc $sd
            settings [$($settings)* $(#[$attr])* #[serde(default)] pub $name: Option<$ty>,]
            config [$($config)*
                #[doc = concat!("`", stringify!($name), "`, its default filled in.")]
                pub $name: $ty,]
            defaults [$($defaults)* $name = $default,]
            given $given
            names [$($names)* $name] derived $derived);
    };

    // A key taken as given.
    (@key [$(#[$attr:meta])* $name:ident : $ty:ty; $($rest:tt)*]
        settings_doc $sd:tt
        settings [$($settings:tt)*]
        config [$($config:tt)*]
        defaults $defaults:tt
        given [$($given:ident)*]
        names [$($names:ident)*] derived $derived:tt
    ) => {
        settings!(@key [$($rest)*]
            settings_doc $sd
            settings [$($settings)* $(#[$attr])* #[serde(default)] pub $name: $ty,]
            config [$($config)*
                #[doc = concat!("`", stringify!($name), "`, as given.")]
                pub $name: $ty,]
            defaults $defaults
            given [$($given)* $name]
            names [$($names)* $name] derived $derived);
    };

    // Every key read: write the types and the conversions.
    (@key []
        settings_doc [$($sd:tt)*]
        settings [$($settings:tt)*]
        config [$($config:tt)*]
        defaults [$($dflt:ident = $default:expr,)*]
        given [$($given:ident)*]
        names [$($names:ident)*]
        derived [$($(#[$dattr:meta])* pub $dname:ident: $dty:ty,)*]
    ) => {
        $($sd)*
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $($settings)*
            /// TOML configuration file; flags override its keys.
            #[arg(long, value_name = "FILE")]
            #[serde(skip)]
            pub config: Option<PathBuf>,
        }

        /// The validated, complete configuration of a daemon.
        #[derive(Debug, Clone)]
        pub struct Config {
            $($config)*
            $($(#[$dattr])* pub $dname: $dty,)*
        }

        /// The `Config` fields `resolve::derive` computes by hand.
        pub(super) struct Derived {
            $($(#[$dattr])* pub $dname: $dty,)*
        }

        impl Settings {
            /// `self` (from the file) overridden by `flags`.
            pub fn overridden_by(self, flags: Settings) -> Settings {
                Settings {
                    $($names: super::declare::Merge::merge(self.$names, flags.$names),)*
                    config: flags.config,
                }
            }
        }

        impl Config {
            /// `s` with its defaults filled in, and the fields
            /// `resolve::derive` computed from it.
            pub(super) fn assemble(s: Settings, derived: Derived) -> Config {
                let Derived { $($dname),* } = derived;
                Config {
                    $($dflt: s.$dflt.unwrap_or($default),)*
                    $($given: s.$given,)*
                    $($dname,)*
                }
            }

            /// The keys given or defaulted, with their values; the derived
            /// ones are `resolve::show_derived`'s.
            pub(super) fn plain_settings(&self) -> Settings {
                Settings {
                    $($dflt: Some(Clone::clone(&self.$dflt)),)*
                    $($given: Clone::clone(&self.$given),)*
                    ..Settings::default()
                }
            }
        }
    };
}

pub(super) use settings;

#[cfg(test)]
mod tests {
    use super::Merge;

    #[test]
    fn a_given_flag_wins_over_the_file() {
        assert_eq!(Merge::merge(Some(1), Some(2)), Some(2));
        assert_eq!(Merge::merge(Some(1), None), Some(1));
        assert!(
            Merge::merge(true, false),
            "a switch the file turned on stays on"
        );
        let file = vec!["a"];
        assert_eq!(Merge::merge(file.clone(), vec!["b", "c"]), vec!["b", "c"]);
        assert_eq!(
            Merge::merge(file, Vec::new()),
            vec!["a"],
            "no flag: the file's list"
        );
    }
}
