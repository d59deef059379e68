//! The key file: UTF-8 text, one key a line, `key <id> <64 hex digits>` (id a u32, the key
//! 32 bytes), `#` comments and blank lines allowed. Read once at open; refused when group or
//! others may read it. Layout and rotation: docs/operations.md, "Encryption at rest".

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use zeroize::Zeroize;

/// Bytes of a key.
pub const KEY_LEN: usize = 32;

/// Reads and parses `path`, refusing a file that group or others may read.
pub fn read(path: &Path) -> Result<BTreeMap<u32, [u8; KEY_LEN]>> {
    let meta = std::fs::metadata(path).map_err(Error::io("read key file", path))?;
    check_mode(path, meta_mode(&meta))?;
    let mut text = std::fs::read_to_string(path).map_err(Error::io("read key file", path))?;
    let keys = parse(&text, path);
    text.zeroize();
    keys
}

fn meta_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

/// Refuses a mode that lets group or others read or write the file.
pub fn check_mode(path: &Path, mode: u32) -> Result<()> {
    if mode & 0o077 != 0 {
        return Err(Error::KeyFile {
            path: path.to_owned(),
            line: 0,
            detail: format!(
                "mode {:03o} lets group or others use the key file; run `chmod 600 {}`",
                mode & 0o777,
                path.display()
            ),
        });
    }
    Ok(())
}

/// Parses a key file's text; `path` only names the file in errors. Never puts key material in
/// an error.
pub fn parse(text: &str, path: &Path) -> Result<BTreeMap<u32, [u8; KEY_LEN]>> {
    let bad = |line: usize, detail: String| Error::KeyFile { path: path.to_owned(), line: line as u64 + 1, detail };
    let mut keys = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [word, id, hex] = words.as_slice() else {
            return Err(bad(i, format!("expected `key <id> <64 hex digits>`, found {} word(s)", words.len())));
        };
        if *word != "key" {
            return Err(bad(i, "expected a line starting with `key`".into()));
        }
        let id: u32 = id.parse().map_err(|_| bad(i, format!("key id {id:?} is not a number 0..=4294967295")))?;
        if hex.len() != 2 * KEY_LEN {
            return Err(bad(
                i,
                format!("key {id}: {} hex digits; a key is exactly {} (32 bytes)", hex.len(), 2 * KEY_LEN),
            ));
        }
        let mut key = [0u8; KEY_LEN];
        for (j, pair) in hex.as_bytes().chunks(2).enumerate() {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(h), Some(l)) => key[j] = h << 4 | l,
                _ => {
                    key.zeroize();
                    return Err(bad(i, format!("key {id}: not hexadecimal")));
                }
            }
        }
        if keys.insert(id, key).is_some() {
            return Err(bad(i, format!("key id {id} appears twice")));
        }
    }
    if keys.is_empty() {
        return Err(Error::KeyFile { path: path.to_owned(), line: 0, detail: "holds no key".into() });
    }
    Ok(keys)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/portlog/keys")).unwrap_err().to_string()
    }

    #[test]
    fn parses_keys_comments_and_blank_lines() {
        let text = format!("# portlog keys\n\nkey 1 {K1}  # first\nkey 7 {}\n", K1.to_uppercase());
        let keys = parse(&text, Path::new("k")).unwrap();
        assert_eq!(keys.keys().copied().collect::<Vec<_>>(), vec![1, 7]);
        assert_eq!(keys[&1][31], 0x1f);
        assert_eq!(keys[&1], keys[&7]);
    }

    #[test]
    fn errors_name_the_file_and_line_and_never_the_key() {
        let e = err(&format!("key 1 {K1}\nkey 1 {K1}\n"));
        assert!(e.contains("/etc/portlog/keys") && e.contains("line 2") && e.contains("twice"), "{e}");
        let e = err(&format!("\nkey 2 {}\n", &K1[..62]));
        assert!(e.contains("line 2") && e.contains("62 hex digits"), "{e}");
        let e = err(&format!("key x {K1}\n"));
        assert!(e.contains("line 1") && e.contains("not a number"), "{e}");
        let e = err(&format!("kee 1 {K1}\n"));
        assert!(e.contains("`key`"), "{e}");
        let e = err(&format!("key 1 {}zz\n", &K1[..62]));
        assert!(e.contains("not hexadecimal"), "{e}");
        assert!(err("# nothing\n").contains("no key"));
        for e in [err(&format!("key 1 {K1}\nkey 1 {K1}\n")), err(&format!("key 1 {}zz\n", &K1[..62]))] {
            assert!(!e.contains(&K1[..16]), "key material in an error: {e}");
        }
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        assert!(check_mode(Path::new("k"), 0o100600).is_ok());
        assert!(check_mode(Path::new("k"), 0o100400).is_ok());
        for mode in [0o100644, 0o100640, 0o100604, 0o100660] {
            let e = check_mode(Path::new("k"), mode).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }
}
