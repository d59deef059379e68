//! The message templates of `shared/data/templates.tsv`, parsed once into literal text and typed
//! placeholders so that generating a message is a walk over a short list.

use anyhow::{bail, Context, Result};
use portlog_engine::Usage;
use std::path::{Path, PathBuf};

/// Environment variable naming the templates file explicitly.
pub const TEMPLATES_ENV: &str = "PORTLOG_TEMPLATES";

/// Path of the templates file below a checkout's root (or below the directory holding it).
const TEMPLATES_REL: &str = "shared/data/templates.tsv";

/// A placeholder of a template; each is filled with a realistic random value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `{amount}`: money in yuan, round (`199`) or with cents (`268.50`).
    Amount,
    /// `{area}`: a district or neighbourhood (`朝阳区`).
    Area,
    /// `{balance}`: an account balance with cents.
    Balance,
    /// `{city}`: a city name.
    City,
    /// `{code}`: a 6-digit verification or pick-up code.
    Code,
    /// `{course}`: a course title.
    Course,
    /// `{date}`: a day a few days after the record time, as `6月12日`.
    Date,
    /// `{dept}`: a hospital department.
    Dept,
    /// `{discount}`: money off, in yuan.
    Discount,
    /// `{flight}`: a flight number (`MU5137`).
    Flight,
    /// `{n}`: a small count.
    N,
    /// `{n}` before `%`: a percentage, 50 to 95.
    Percent,
    /// `{n}` before `G` (a mobile network generation): 4 or 5.
    NetworkGeneration,
    /// `{amount}` before `元/平`: a property price per square metre, 8 000 to 60 000.
    PricePerSqm,
    /// `{name}` in a courier's or a person's context (`张师傅`).
    PersonName,
    /// `{name}` in a property developer's template: an estate (`锦绣华庭`).
    EstateName,
    /// `{name}` in a car maker's template: a model (`驰骋X5`).
    CarModel,
    /// `{order}`: a 12-digit order or account number.
    Order,
    /// `{phone}`: a mobile or hotline number.
    Phone,
    /// `{rate}`: an interest rate in percent, one decimal.
    Rate,
    /// `{remain}`: remaining data volume in MB.
    Remain,
    /// `{tail}`: the last 4 digits of an account.
    Tail,
    /// `{time}`: a time of day, `14:30`.
    Time,
}

impl Slot {
    /// The slot named `name` (without braces) in a template of `signature`, followed by the
    /// text `after` (some values depend on the unit that follows them).
    pub fn parse(name: &str, signature: &str, after: &str) -> Option<Self> {
        Some(match name {
            "amount" if after.starts_with("元/平") => Slot::PricePerSqm,
            "amount" => Slot::Amount,
            "area" => Slot::Area,
            "balance" => Slot::Balance,
            "city" => Slot::City,
            "code" => Slot::Code,
            "course" => Slot::Course,
            "date" => Slot::Date,
            "dept" => Slot::Dept,
            "discount" => Slot::Discount,
            "flight" => Slot::Flight,
            "n" if after.starts_with('%') => Slot::Percent,
            "n" if after.starts_with('G') => Slot::NetworkGeneration,
            "n" => Slot::N,
            "name" if signature.contains("房产") || signature.contains("地产") => Slot::EstateName,
            "name" if signature.contains("汽车") => Slot::CarModel,
            "name" => Slot::PersonName,
            "order" => Slot::Order,
            "phone" => Slot::Phone,
            "rate" => Slot::Rate,
            "remain" => Slot::Remain,
            "tail" => Slot::Tail,
            "time" => Slot::Time,
            _ => return None,
        })
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Lit(String),
    /// A value to fill in.
    Slot(Slot),
}

/// One MT template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Declared usage of the messages made from it.
    pub usage: Usage,
    /// The provider's signature (without the 【】).
    pub signature: String,
    /// Literal text and placeholders, in order.
    pub parts: Vec<Part>,
}

/// A sender of MT messages: one signature with one usage, and the templates it sends. Every
/// generated sub-port is assigned to one provider, as the regulation requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The signature.
    pub signature: String,
    /// The usage of its sub-ports.
    pub usage: Usage,
    /// Indexes into [`Templates::mt`].
    pub templates: Vec<usize>,
}

/// Every template of the file, grouped for the generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    /// MT templates.
    pub mt: Vec<Template>,
    /// Providers in order of first appearance.
    pub providers: Vec<Provider>,
    /// MO texts that are reject keywords (`R`, `r`, possibly padded with spaces).
    pub mo_reject: Vec<String>,
    /// Other MO texts (short replies).
    pub mo_other: Vec<String>,
}

/// Used when the file has no MO reject rows.
const DEFAULT_MO_REJECT: &[&str] = &["R", "r"];
/// Used when the file has no other MO rows.
const DEFAULT_MO_OTHER: &[&str] = &["好的", "TD", "查询"];

impl Templates {
    /// Finds the templates file: `$PORTLOG_TEMPLATES` if set, else `shared/data/templates.tsv`
    /// in this crate's directory or any directory above it (a checkout keeps `shared/` beside
    /// the clone, so `<clone>/../shared/...` is found from `<clone>/benches`).
    pub fn locate() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os(TEMPLATES_ENV) {
            let p = PathBuf::from(p);
            if !p.is_file() {
                bail!("{TEMPLATES_ENV}={} is not a file", p.display());
            }
            return Ok(p);
        }
        let start = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in start.ancestors() {
            let p = dir.join(TEMPLATES_REL);
            if p.is_file() {
                return Ok(p);
            }
        }
        bail!("{TEMPLATES_REL} not found in {} or above it; set {TEMPLATES_ENV}", start.display())
    }

    /// Loads the file found by [`Templates::locate`].
    pub fn load_default() -> Result<Self> {
        Self::load(&Self::locate()?)
    }

    /// Loads and parses a templates file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses the TSV text: a header line, then `usage<TAB>signature<TAB>template` where usage is
    /// `commercial`, `service`, `public` or `mo` (whose template is the MO text, kept verbatim).
    pub fn parse(text: &str) -> Result<Self> {
        let mut t = Templates { mt: Vec::new(), providers: Vec::new(), mo_reject: Vec::new(), mo_other: Vec::new() };
        for (i, line) in text.lines().enumerate().skip(1) {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let mut cols = line.splitn(3, '\t');
            let (Some(usage), Some(signature), Some(body)) = (cols.next(), cols.next(), cols.next()) else {
                bail!("line {line_no}: expected 3 tab-separated columns");
            };
            if usage == "mo" {
                let trimmed = body.trim();
                if trimmed == "R" || trimmed == "r" {
                    t.mo_reject.push(body.to_owned());
                } else {
                    t.mo_other.push(body.to_owned());
                }
                continue;
            }
            let usage = Usage::parse(usage).map_err(|e| anyhow::anyhow!("line {line_no}: {e}"))?;
            let parts = parse_parts(body, signature).with_context(|| format!("line {line_no}"))?;
            let idx = t.mt.len();
            t.mt.push(Template { usage, signature: signature.to_owned(), parts });
            match t.providers.iter_mut().find(|p| p.signature == signature && p.usage == usage) {
                Some(p) => p.templates.push(idx),
                None => t.providers.push(Provider { signature: signature.to_owned(), usage, templates: vec![idx] }),
            }
        }
        if t.mt.is_empty() {
            bail!("no MT templates");
        }
        if t.mo_reject.is_empty() {
            t.mo_reject = DEFAULT_MO_REJECT.iter().map(|s| (*s).to_owned()).collect();
        }
        if t.mo_other.is_empty() {
            t.mo_other = DEFAULT_MO_OTHER.iter().map(|s| (*s).to_owned()).collect();
        }
        Ok(t)
    }
}

/// Splits a template into literals and slots; an unknown or unclosed placeholder is an error.
fn parse_parts(body: &str, signature: &str) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Lit(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { bail!("unclosed placeholder in {body:?}") };
        let name = &after[..close];
        let Some(slot) = Slot::parse(name, signature, &after[close + 1..]) else {
            bail!("unknown placeholder {{{name}}} in {body:?}")
        };
        parts.push(Part::Slot(slot));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_owned()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_slots_and_mo_rows() {
        let t = Templates::parse(
            "usage\tsignature\ttemplate\n\
             commercial\t安居房产\t【安居房产】{name}均价{amount}元/平{amount}元\n\
             service\t鲜果到家\t【鲜果到家】快递员{name}\n\
             mo\t-\t R \n\
             mo\t-\t好的\n",
        )
        .unwrap();
        assert_eq!(t.mt[0].parts[1], Part::Slot(Slot::EstateName));
        assert_eq!(t.mt[0].parts[3], Part::Slot(Slot::PricePerSqm));
        assert_eq!(t.mt[0].parts[5], Part::Slot(Slot::Amount));
        assert_eq!(t.mt[1].parts[1], Part::Slot(Slot::PersonName));
        assert_eq!(t.providers.len(), 2);
        assert_eq!(t.mo_reject, vec![" R ".to_owned()]);
        assert_eq!(t.mo_other, vec!["好的".to_owned()]);
    }

    #[test]
    fn unknown_placeholder_is_an_error() {
        let e = Templates::parse("h\nservice\tx\t【x】{nope}\n").unwrap_err();
        assert!(format!("{e:#}").contains("{nope}"), "{e:#}");
        assert!(Templates::parse("h\nservice\tx\t【x】{amount\n").is_err());
    }

    #[test]
    fn shared_file_loads() {
        let t = Templates::load_default().unwrap();
        assert!(t.mt.len() >= 30, "{}", t.mt.len());
        assert!(t.providers.iter().any(|p| p.usage == Usage::Public));
        assert!(!t.mo_reject.is_empty() && !t.mo_other.is_empty());
    }
}
