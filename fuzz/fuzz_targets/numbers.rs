//! Number, sub-port, direction, usage and time parsing on arbitrary text. Checks: no panic; a
//! parsed value's normal form parses back to it (and so do the other accepted spellings of a
//! number: `+86`, `0086`, `86`, surrounding whitespace); an integer form is valid exactly in
//! range; a time's RFC 3339 rendering (UTC+8) parses back to the same millisecond.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portlog_engine::time::{parse_time_ms, rfc3339_utc8};
use portlog_engine::{Direction, PhoneNumber, SubPort, Usage};

/// 9999-12-31T23:59:59.999+08:00: the last instant with a four-digit year in UTC+8.
const RFC3339_MS_MAX: i64 = 253_402_271_999_999;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(n) = PhoneNumber::parse(&s) {
        let canon = n.to_string();
        assert!(canon.len() == 11 && canon.starts_with('1'), "{canon}");
        for form in
            [canon.clone(), format!("+86{canon}"), format!("0086{canon}"), format!("86{canon}"), format!(" {canon}\t")]
        {
            assert_eq!(PhoneNumber::parse(&form).ok(), Some(n), "{form:?}");
        }
        assert_eq!(PhoneNumber::from_u64(n.as_u64()), Some(n));
    }
    if let Ok(sp) = SubPort::parse(&s) {
        assert_eq!(sp.as_str(), s.trim());
        assert!(!sp.as_str().is_empty() && sp.as_str().len() <= 20 && sp.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(SubPort::parse(sp.as_str()).as_ref().ok(), Some(&sp));
        assert_eq!(SubPort::parse(&sp.to_string()).as_ref().ok(), Some(&sp));
    }
    if let Some(head) = data.get(..8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        let v = u64::from_le_bytes(b);
        match PhoneNumber::from_u64(v) {
            Some(n) => assert_eq!(PhoneNumber::parse(&n.to_string()).ok(), Some(n)),
            None => assert!(!(PhoneNumber::MIN..=PhoneNumber::MAX).contains(&v)),
        }
    }
    if let Ok(d) = Direction::parse(&s) {
        assert_eq!(Direction::parse(d.as_str()).ok(), Some(d));
    }
    if let Ok(u) = Usage::parse(&s) {
        assert_eq!(Usage::parse(u.as_str()).ok(), Some(u));
    }
    if let Ok(t) = parse_time_ms(&s) {
        if (0..=RFC3339_MS_MAX).contains(&t) {
            let r = rfc3339_utc8(t);
            assert_eq!(parse_time_ms(&r), Ok(t), "{r}");
        }
    }
});
