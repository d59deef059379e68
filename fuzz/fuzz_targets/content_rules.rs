//! The content rules of a commercial text (`registry::check`: `signature_of`,
//! `content_violation`, `is_reject_keyword`) on arbitrary text. Checks: no panic; a signature
//! found is non-empty, trimmed and free of `】`; a text signed by its provider is never
//! `bad_signature`; `【sig】 + anything + 拒收请回复R` passes for a provider of that signature;
//! no text is a keyword of an empty list; an ASCII word is a keyword of itself in any case,
//! full width, padded and punctuated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portlog_engine::registry::check::{content_violation, is_reject_keyword, signature_of, REJECT_INSTRUCTION};
use portlog_engine::registry::{Provider, Reason};

fn provider(signatures: Vec<String>) -> Provider {
    Provider {
        id: "p1".into(),
        name: "星河银行股份有限公司".into(),
        signatures,
        blacklisted: false,
        whitelisted: false,
        changed_ms: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let keywords = ["R", "TD", "退订"].map(String::from);
    let _ = is_reject_keyword(&text, &keywords);
    assert!(!is_reject_keyword(&text, &[]));
    let _ = content_violation(&text, &provider(vec!["星河银行".into()]));

    if let Some(sig) = signature_of(&text) {
        assert!(!sig.is_empty() && sig == sig.trim() && !sig.contains('】'), "{sig:?}");
        assert!(text.trim_start().starts_with('【'));
        let r = content_violation(&text, &provider(vec![sig.to_owned()]));
        assert_ne!(r, Some(Reason::BadSignature), "{text:?} signed {sig:?}");
    }

    // The input split at its first '|' as (signature, body) of a well-formed text.
    let (sig, body) = text.split_once('|').unwrap_or((text.as_ref(), ""));
    let sig = sig.trim();
    if !sig.is_empty() && !sig.contains('】') {
        let good = format!("【{sig}】{body}{REJECT_INSTRUCTION}");
        assert_eq!(signature_of(&good), Some(sig), "{good:?}");
        assert_eq!(content_violation(&good, &provider(vec![sig.to_owned()])), None, "{good:?}");
    }

    // An ASCII word (from the input's letters and digits) is a keyword of itself.
    let word: String = text.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    if !word.is_empty() {
        let kw = [word.to_ascii_lowercase()];
        let wide: String = word.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)).collect();
        for form in [word.clone(), word.to_ascii_uppercase(), format!(" {word}。"), format!("{wide}！")] {
            assert!(is_reject_keyword(&form, &kw), "{form:?} is not the keyword {kw:?}");
        }
    }
});
