//! The message record and the strict validation of its fields (design.md, "Numbers").

use crate::error::{Error, Result};
use std::fmt;

/// Largest number of digits in a sub-port.
pub const SUB_PORT_DIGITS_MAX: usize = 20;

/// Direction of a message, seen from the sub-port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Mobile-terminated: the sub-port sent it to the user.
    Mt,
    /// Mobile-originated: the user sent it to the sub-port.
    Mo,
}

impl Direction {
    /// `"mt"` or `"mo"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Mt => "mt",
            Direction::Mo => "mo",
        }
    }

    /// Parses `mt` / `mo` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mt" => Ok(Direction::Mt),
            "mo" => Ok(Direction::Mo),
            _ => Err(Error::invalid("dir", format!("{s:?} is not \"mt\" or \"mo\""))),
        }
    }
}

/// The usage of a sub-port or of an MT message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    /// 商业性: marketing.
    Commercial,
    /// 业务管理和服务类: notifications, codes, bills.
    Service,
    /// 公益性: public welfare.
    Public,
}

impl Usage {
    /// `"commercial"`, `"service"` or `"public"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Commercial => "commercial",
            Usage::Service => "service",
            Usage::Public => "public",
        }
    }

    /// Parses the names above (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "commercial" => Ok(Usage::Commercial),
            "service" => Ok(Usage::Service),
            "public" => Ok(Usage::Public),
            _ => Err(Error::invalid("usage", format!("{s:?} is not one of commercial, service, public"))),
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Usage::Commercial => 1,
            Usage::Service => 2,
            Usage::Public => 3,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Option<Usage>> {
        match c {
            0 => Some(None),
            1 => Some(Some(Usage::Commercial)),
            2 => Some(Some(Usage::Service)),
            3 => Some(Some(Usage::Public)),
            _ => None,
        }
    }
}

/// A mainland mobile number, normalised to its 11 digits and held as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(u64);

impl PhoneNumber {
    /// Smallest valid value (10000000000).
    pub const MIN: u64 = 10_000_000_000;
    /// Largest valid value (19999999999).
    pub const MAX: u64 = 19_999_999_999;

    /// Parses a number given with or without a `+86`, `0086` or `86` prefix. Only digits are
    /// accepted after the prefix; the result must be 11 digits starting with 1.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let digits = if let Some(r) = t.strip_prefix("+86") {
            r
        } else if let Some(r) = t.strip_prefix("0086") {
            r
        } else if t.len() == 13 {
            t.strip_prefix("86").unwrap_or(t)
        } else {
            t
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "number",
                format!("{s:?} is not a phone number: digits only, optionally after +86, 0086 or 86"),
            ));
        }
        if digits.len() != 11 || !digits.starts_with('1') {
            return Err(Error::invalid(
                "number",
                format!("{s:?} is not a mainland mobile number (11 digits starting with 1)"),
            ));
        }
        // 11 ASCII digits always fit in u64.
        let v = digits.bytes().fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        Ok(PhoneNumber(v))
    }

    /// From the integer form; `None` unless it is 11 digits starting with 1.
    pub fn from_u64(v: u64) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&v).then_some(PhoneNumber(v))
    }

    /// The integer form.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:011}", self.0)
    }
}

/// A sub-port: a non-empty string of at most 20 ASCII digits (e.g. `1069012345601`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubPort(Box<str>);

impl SubPort {
    /// Validates and wraps a sub-port.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.is_empty() || t.len() > SUB_PORT_DIGITS_MAX || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "sub_port",
                format!("{s:?} is not a sub-port (1 to {SUB_PORT_DIGITS_MAX} digits)"),
            ));
        }
        Ok(SubPort(t.into()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Stable 64-bit hash of the digits (xxh3); selects the shard.
    pub fn hash64(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(self.0.as_bytes())
    }
}

impl fmt::Display for SubPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message of the log. Immutable once acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// MT or MO.
    pub dir: Direction,
    /// The sub-port that sent (MT) or received (MO) it.
    pub sub_port: SubPort,
    /// The user's number: recipient of an MT, sender of an MO.
    pub peer: PhoneNumber,
    /// Record time: when the message was sent or received, ms since the epoch (UTC).
    pub ts_ms: i64,
    /// Declared usage of an MT; always `None` on an MO.
    pub usage: Option<Usage>,
    /// The message text (UTF-8), possibly a long concatenated SMS.
    pub text: String,
}

impl Record {
    /// Checks the invariants that the types cannot: usage present exactly on MT, a time after
    /// the epoch, the text within `text_bytes_max`.
    pub fn validate(&self, text_bytes_max: usize) -> Result<()> {
        match (self.dir, self.usage) {
            (Direction::Mt, None) => {
                return Err(Error::invalid("usage", "an mt record needs a usage (commercial, service or public)"))
            }
            (Direction::Mo, Some(_)) => return Err(Error::invalid("usage", "an mo record carries no usage")),
            _ => {}
        }
        if self.ts_ms < 0 {
            return Err(Error::invalid("ts", format!("{} ms is before 1970", self.ts_ms)));
        }
        if self.text.len() > text_bytes_max {
            return Err(Error::invalid(
                "text",
                format!("{} bytes exceeds the limit of {text_bytes_max} bytes", self.text.len()),
            ));
        }
        Ok(())
    }

    /// Bytes of the record's variable parts; used for batch limits.
    pub fn approx_bytes(&self) -> usize {
        32 + self.sub_port.as_str().len() + self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_normalise_prefixes() {
        for s in ["13800138000", "+8613800138000", "008613800138000", "8613800138000", " 13800138000 "] {
            assert_eq!(PhoneNumber::parse(s).unwrap().to_string(), "13800138000", "{s}");
        }
        for s in
            ["", "1380013800", "138001380001", "23800138000", "1380013800a", "+8623800138000", "+1 555 0100", "86138"]
        {
            let e = PhoneNumber::parse(s).unwrap_err();
            assert!(e.to_string().starts_with("invalid number"), "{s}: {e}");
        }
        assert!(PhoneNumber::from_u64(9_999_999_999).is_none());
        assert!(PhoneNumber::from_u64(19_999_999_999).is_some());
    }

    #[test]
    fn sub_ports_are_short_digit_strings() {
        assert_eq!(SubPort::parse("1069012345601").unwrap().as_str(), "1069012345601");
        assert!(SubPort::parse("12345678901234567890").is_ok());
        for s in ["", "123456789012345678901", "1069x", "-1"] {
            assert!(SubPort::parse(s).unwrap_err().to_string().starts_with("invalid sub_port"));
        }
    }

    #[test]
    fn usage_only_on_mt() {
        let mut r = Record {
            dir: Direction::Mo,
            sub_port: SubPort::parse("106901").unwrap(),
            peer: PhoneNumber::parse("13800138000").unwrap(),
            ts_ms: 1,
            usage: Some(Usage::Commercial),
            text: "R".into(),
        };
        assert!(r.validate(100).is_err());
        r.usage = None;
        assert!(r.validate(100).is_ok());
        r.dir = Direction::Mt;
        assert!(r.validate(100).is_err());
        r.usage = Some(Usage::Service);
        r.text = "x".repeat(101);
        assert!(r.validate(100).unwrap_err().to_string().contains("text"));
    }
}
