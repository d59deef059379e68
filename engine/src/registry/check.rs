//! The hot-path question and the content rules.
//!
//! Order of the reasons when several apply (the first wins): `unknown_sub_port`,
//! `no_assignment`, `blacklisted`, `usage_mismatch`, then, for commercial messages only and
//! unless the provider is whitelisted, `rejected`, `no_consent`; then, for a commercial text,
//! `bad_signature` and `missing_reject_instruction`.

use super::types::{Provider, Reason};

/// The instruction a commercial text must end with.
pub const REJECT_INSTRUCTION: &str = "拒收请回复R";

/// Folds full-width ASCII forms (`Ｒ`, `！`, U+FF01..=U+FF5E) to ASCII and the ideographic space to
/// a space: phones with a Chinese input method send `Ｒ` as often as `R`.
fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Trailing characters a text may carry after the reject instruction or a reject keyword:
/// whitespace and sentence-ending punctuation (ASCII and CJK). Anything else (words, a link)
/// after the instruction means the instruction is not "at the end".
fn is_trailing_punct(c: char) -> bool {
    c.is_whitespace() || matches!(c, '.' | '!' | '。' | '！' | '～' | '~' | '…')
}

/// True when an MO's text is one of the reject `keywords`: compared after trimming whitespace
/// and trailing punctuation, folding full-width forms, ignoring ASCII case.
pub fn is_reject_keyword(text: &str, keywords: &[String]) -> bool {
    if text.len() > 64 {
        return false;
    }
    let folded: String = text.chars().map(fold_width).collect();
    let t = folded.trim().trim_end_matches(is_trailing_punct);
    !t.is_empty() && keywords.iter().any(|k| k.trim().eq_ignore_ascii_case(t))
}

/// The signature a text starts with (`【…】`, after leading whitespace), if any.
pub fn signature_of(text: &str) -> Option<&str> {
    let t = text.trim_start().strip_prefix('【')?;
    let end = t.find('】')?;
    let sig = t[..end].trim();
    (!sig.is_empty()).then_some(sig)
}

/// The first content rule a commercial text breaks, for this provider.
pub fn content_violation(text: &str, provider: &Provider) -> Option<Reason> {
    match signature_of(text) {
        Some(sig) if sig == provider.name || provider.signatures.iter().any(|s| s == sig) => {}
        _ => return Some(Reason::BadSignature),
    }
    let body = text.trim_end_matches(is_trailing_punct);
    let folded_tail: String = {
        let n = body.chars().rev().take(REJECT_INSTRUCTION.chars().count()).count();
        let skip = body.chars().count() - n;
        body.chars().skip(skip).map(fold_width).collect()
    };
    let want = REJECT_INSTRUCTION;
    let ok = folded_tail == want || folded_tail.strip_suffix('r').is_some_and(|p| want.strip_suffix('R') == Some(p));
    if !ok {
        return Some(Reason::MissingRejectInstruction);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        Provider {
            id: "p1".into(),
            name: "星河银行股份有限公司".into(),
            signatures: vec!["星河银行".into(), "星河".into()],
            blacklisted: false,
            whitelisted: false,
            changed_ms: 0,
        }
    }

    #[test]
    fn keywords_are_trimmed_folded_and_case_insensitive() {
        let k = vec!["R".to_string()];
        for t in ["R", "r", " R\n", "Ｒ", "ｒ", "R。", "\u{3000}R ", "r!"] {
            assert!(is_reject_keyword(t, &k), "{t:?}");
        }
        for t in ["", "RR", "Reply", "R R", "不要R", "TD"] {
            assert!(!is_reject_keyword(t, &k), "{t:?}");
        }
        let k2 = vec!["R".to_string(), "TD".to_string(), "退订".to_string()];
        assert!(is_reject_keyword("td", &k2));
        assert!(is_reject_keyword(" 退订 ", &k2));
    }

    #[test]
    fn content_rules() {
        let p = provider();
        assert_eq!(content_violation("【星河银行】会员日满100减20。拒收请回复R", &p), None);
        assert_eq!(content_violation("  【星河】会员日。拒收请回复R。 ", &p), None);
        assert_eq!(content_violation("【星河银行股份有限公司】会员日。拒收请回复r", &p), None);
        assert_eq!(content_violation("【星河银行】会员日。拒收请回复Ｒ！", &p), None);
        assert_eq!(content_violation("会员日。拒收请回复R", &p), Some(Reason::BadSignature));
        assert_eq!(content_violation("【】会员日。拒收请回复R", &p), Some(Reason::BadSignature));
        assert_eq!(content_violation("【月亮银行】会员日。拒收请回复R", &p), Some(Reason::BadSignature));
        assert_eq!(content_violation("【星河银行 会员日。拒收请回复R", &p), Some(Reason::BadSignature));
        assert_eq!(content_violation("【星河银行】会员日", &p), Some(Reason::MissingRejectInstruction));
        assert_eq!(
            content_violation("【星河银行】拒收请回复R 详情见 http://x.cn", &p),
            Some(Reason::MissingRejectInstruction)
        );
    }
}
