//! Command-line helpers shared by the harnesses.

use anyhow::{anyhow, Result};

/// `v`, the value of `flag`, as a number; `_` may group digits (`1_000_000`). The error names
/// the flag and the value.
pub fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T> {
    v.replace('_', "").parse().map_err(|_| anyhow!("{flag}: {v:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_digit_groups_and_bad_ones_named() {
        assert_eq!(parse_num::<u64>("--records", "1_000_000").unwrap(), 1_000_000);
        assert_eq!(parse_num::<f64>("--rate", "1.5").unwrap(), 1.5);
        let e = parse_num::<u32>("--shards", "four").unwrap_err().to_string();
        assert!(e.contains("--shards") && e.contains("four"), "{e}");
    }
}
