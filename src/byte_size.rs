//! Sizes in settings (`max_rss = "512M"`): a number of bytes with an
//! optional K, M or G suffix (powers of 1024, as `ulimit` and php-fpm's
//! `memory_limit` read them), or a plain TOML integer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let (digits, shift) = match t.as_bytes().last().map(u8::to_ascii_uppercase) {
            Some(b'K') => (&t[..t.len() - 1], 10),
            Some(b'M') => (&t[..t.len() - 1], 20),
            Some(b'G') => (&t[..t.len() - 1], 30),
            _ => (t, 0),
        };
        let bad = || format!("{s:?} is not a size like 512M (bytes, or K, M, G)");
        let n: u64 = digits.trim().parse().map_err(|_| bad())?;
        n.checked_mul(1 << shift).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] {
            if n != 0 && n.is_multiple_of(1 << shift) {
                return write!(f, "{}{suffix}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_powers_of_1024() {
        let parse = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(parse("1000"), Ok(1000));
        assert_eq!(parse("64k"), Ok(64 << 10));
        assert_eq!(parse("512M"), Ok(512 << 20));
        assert_eq!(parse(" 2G "), Ok(2 << 30));
        assert!(parse("12MB").is_err());
        assert!(parse("M").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("99999999999G").is_err(), "overflow");
    }

    #[test]
    fn shown_with_the_largest_exact_suffix() {
        assert_eq!(ByteSize(512 << 20).to_string(), "512M");
        assert_eq!(ByteSize(1536).to_string(), "1536");
        assert_eq!(ByteSize(3 << 30).to_string(), "3G");
        assert_eq!(ByteSize(0).to_string(), "0");
    }

    #[test]
    fn toml_takes_integers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            a: ByteSize,
            b: ByteSize,
        }
        let t: T = toml::from_str("a = 4096\nb = \"80M\"\n").unwrap();
        assert_eq!((t.a.0, t.b.0), (4096, 80 << 20));
        assert!(toml::from_str::<T>("a = \"x\"\nb = 1\n").is_err());
    }
}
