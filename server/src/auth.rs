//! Bearer tokens, roles and the one table saying which role may call which method.
//!
//! The tokens file (`--tokens FILE`, cli.md) is TOML with one `[[token]]` entry per client:
//! `token` (the secret), `name` (who, in the audit trail) and `role`. Without a tokens file the
//! daemon listens on loopback only and every call is open, made by `anonymous`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Gateway proxies: the check.
    Gateway,
    /// Message sources: ingest.
    Ingest,
    /// Complaint handling: trace, reject lists, audit reading, ledger reading.
    Investigator,
    /// Everything.
    Admin,
}

impl Role {
    /// Every role, in the order of cli.md (`--tokens`): what a test walks to try each method
    /// with each role.
    pub const ALL: [Role; 4] = [Role::Gateway, Role::Ingest, Role::Investigator, Role::Admin];

    /// The lowercase name used in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Ingest => "ingest",
            Role::Investigator => "investigator",
            Role::Admin => "admin",
        }
    }
}

use Role::{Gateway, Ingest, Investigator};

/// Who may call a method, besides `admin` (who may call everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed, even when tokens are configured (health checks).
    Open,
    /// Any valid token.
    AnyRole,
    /// A valid token with one of these roles (or admin).
    Roles(&'static [Role]),
    /// Nobody with a token, admin included: what [`access`] answers for a method missing from
    /// [`METHOD_ACCESS`] (deny by default). Never written in the table.
    Unlisted,
}

impl Access {
    /// Whether a valid token with `role` may call a method with this access (a missing or
    /// unknown token may only call [`Access::Open`] methods).
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Open | Access::AnyRole => true,
            Access::Roles(roles) => role == Role::Admin || roles.contains(&role),
            Access::Unlisted => false,
        }
    }
}

/// THE table: gRPC method path → who may call it. A method missing here is refused to every
/// token, admin's included ([`Access::Unlisted`], deny by default); `tests/access_control.rs`
/// checks that every method the daemon serves has an entry and that no entry is stale. (Without
/// tokens, access is open and the table is not consulted.)
pub const METHOD_ACCESS: &[(&str, Access)] = &[
    ("/portlog.v1.Check/Check", Access::Roles(&[Gateway])),
    ("/portlog.v1.Check/CheckBatch", Access::Roles(&[Gateway])),
    ("/portlog.v1.Check/CheckStream", Access::Roles(&[Gateway])),
    ("/portlog.v1.Ingest/Append", Access::Roles(&[Ingest])),
    ("/portlog.v1.Trace/Trace", Access::Roles(&[Investigator])),
    ("/portlog.v1.Ledger/AddProvider", Access::Roles(&[])),
    ("/portlog.v1.Ledger/Assign", Access::Roles(&[])),
    ("/portlog.v1.Ledger/End", Access::Roles(&[])),
    ("/portlog.v1.Ledger/Show", Access::Roles(&[Investigator])),
    ("/portlog.v1.Rejects/Add", Access::Roles(&[])),
    ("/portlog.v1.Rejects/ListBySubPort", Access::Roles(&[Investigator])),
    ("/portlog.v1.Rejects/ListByNumber", Access::Roles(&[Investigator])),
    ("/portlog.v1.Rejects/Import", Access::Roles(&[])),
    ("/portlog.v1.Rejects/Export", Access::Roles(&[Investigator])),
    ("/portlog.v1.Consent/Add", Access::Roles(&[])),
    ("/portlog.v1.Consent/Withdraw", Access::Roles(&[])),
    ("/portlog.v1.Audit/List", Access::Roles(&[Investigator])),
    ("/portlog.v1.Stats/Get", Access::AnyRole),
    ("/portlog.v1.Retention/Run", Access::Roles(&[])),
    ("/portlog.v1.Retention/History", Access::Roles(&[Investigator])),
    ("/portlog.v1.Inspect/Run", Access::Roles(&[Investigator])),
    ("/grpc.health.v1.Health/Check", Access::Open),
    ("/grpc.health.v1.Health/Watch", Access::Open),
    // Only reflection v1 is served (serve.rs: `build_v1`).
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Access::AnyRole),
];

/// The methods whose every call, allowed or refused, is written to the audit trail
/// (`crate::audit`): the gate passes a refused call to such a method on to its handler, which
/// audits it as `denied:ACTION` and answers the refusal.
pub const AUDITED: &[&str] = &[
    "/portlog.v1.Trace/Trace",
    "/portlog.v1.Ledger/AddProvider",
    "/portlog.v1.Ledger/Assign",
    "/portlog.v1.Ledger/End",
    "/portlog.v1.Rejects/Add",
    "/portlog.v1.Rejects/ListBySubPort",
    "/portlog.v1.Rejects/ListByNumber",
    "/portlog.v1.Rejects/Import",
    "/portlog.v1.Rejects/Export",
    "/portlog.v1.Consent/Add",
    "/portlog.v1.Consent/Withdraw",
    "/portlog.v1.Retention/Run",
];

/// True for the methods of [`AUDITED`].
pub fn audited(path: &str) -> bool {
    AUDITED.contains(&path)
}

/// The entry of [`METHOD_ACCESS`] for `path`; `None` when the table has none.
pub fn policy(path: &str) -> Option<Access> {
    METHOD_ACCESS.iter().find(|(p, _)| *p == path).map(|(_, a)| *a)
}

/// Who may call `path`: its entry in [`METHOD_ACCESS`], or [`Access::Unlisted`] (nobody).
pub fn access(path: &str) -> Access {
    policy(path).unwrap_or(Access::Unlisted)
}

/// The method name for messages and metrics: `Trace.Trace` for `/portlog.v1.Trace/Trace`.
pub fn short_method(path: &str) -> String {
    let p = path.trim_start_matches('/');
    match p.split_once('/') {
        Some((svc, m)) => format!("{}.{m}", svc.rsplit('.').next().unwrap_or(svc)),
        None => p.to_string(),
    }
}

/// The caller of a request, put in the request extensions by the service layer for handlers
/// (the audit trail names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous` when no tokens are configured.
    pub name: String,
    /// The token's role; `None` when no tokens are configured (open access).
    pub role: Option<Role>,
}

impl Caller {
    /// The caller without tokens (open access on loopback).
    pub fn anonymous() -> Self {
        Caller { name: "anonymous".into(), role: None }
    }

    /// The caller of a tonic request (anonymous if the layer did not run, as in unit tests).
    pub fn of<T>(req: &tonic::Request<T>) -> Caller {
        req.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::anonymous)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    name: String,
    role: Role,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_secret: HashMap<String, Caller>,
}

/// Shortest token accepted, in bytes.
pub const TOKEN_BYTES_MIN: usize = 16;

impl Tokens {
    /// Parses a tokens file's text; names the entry (1-based) and field that is wrong.
    pub fn parse(text: &str) -> Result<Tokens> {
        let f: TokensFile = toml::from_str(text)?;
        if f.token.is_empty() {
            bail!("no [[token]] entries: a tokens file must define at least one token");
        }
        let mut by_secret = HashMap::new();
        for (i, t) in f.token.into_iter().enumerate() {
            let n = i + 1;
            if t.token.len() < TOKEN_BYTES_MIN {
                bail!("token entry {n} ({:?}): token must be at least {TOKEN_BYTES_MIN} characters", t.name);
            }
            if t.name.trim().is_empty() {
                bail!("token entry {n}: name must not be empty");
            }
            let caller = Caller { name: t.name, role: Some(t.role) };
            if by_secret.insert(t.token, caller).is_some() {
                bail!("token entry {n}: the same token appears twice");
            }
        }
        Ok(Tokens { by_secret })
    }

    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Tokens> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading tokens file {}", path.display()))?;
        Tokens::parse(&text).with_context(|| format!("tokens file {}", path.display()))
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.by_secret.len()
    }

    /// The caller holding `secret`.
    pub fn lookup(&self, secret: &str) -> Option<&Caller> {
        self.by_secret.get(secret)
    }
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token or an unknown one: UNAUTHENTICATED.
    Unauthenticated(String),
    /// A valid token whose role may not call the method: PERMISSION_DENIED.
    PermissionDenied(String),
}

/// The caller named by an `authorization` header value: its token's holder, or `anonymous` (no
/// tokens configured, no token sent, or an unknown one).
pub fn identify(tokens: Option<&Tokens>, authorization: Option<&str>) -> Caller {
    tokens.zip(authorization).and_then(|(t, v)| t.lookup(bearer(v))).cloned().unwrap_or_else(Caller::anonymous)
}

fn bearer(value: &str) -> &str {
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim()
}

/// Decides a call: `tokens` is `None` when access is open. `authorization` is the header value.
pub fn authorize(tokens: Option<&Tokens>, path: &str, authorization: Option<&str>) -> Result<Caller, Denied> {
    let Some(tokens) = tokens else { return Ok(Caller::anonymous()) };
    let acc = access(path);
    if acc == Access::Open {
        return Ok(Caller::anonymous());
    }
    let Some(value) = authorization else {
        return Err(Denied::Unauthenticated(format!(
            "{} needs a bearer token (authorization: Bearer TOKEN); none was sent",
            short_method(path)
        )));
    };
    let Some(caller) = tokens.lookup(bearer(value)) else {
        return Err(Denied::Unauthenticated("unknown bearer token".into()));
    };
    let role = caller.role.unwrap_or(Role::Admin);
    if acc.allows(role) {
        return Ok(caller.clone());
    }
    // The roles that may: named from the same predicate that refused.
    let who: Vec<&str> = Role::ALL.iter().filter(|r| acc.allows(**r)).map(|r| r.as_str()).collect();
    Err(Denied::PermissionDenied(if who.is_empty() {
        format!("{} has no access policy: refused to every role (deny by default)", short_method(path))
    } else {
        format!(
            "token {:?} has role {}; {} needs role {}",
            caller.name,
            role.as_str(),
            short_method(path),
            who.join(" or ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[token]]
token = "gateway-secret-0123456789"
name = "gateway-1"
role = "gateway"

[[token]]
token = "admin-secret-0123456789ab"
name = "ops"
role = "admin"
"#;

    #[test]
    fn roles_per_method() {
        let t = Tokens::parse(FILE).unwrap();
        let gw = Some("Bearer gateway-secret-0123456789");
        assert_eq!(authorize(Some(&t), "/portlog.v1.Check/Check", gw).unwrap().name, "gateway-1");
        let e = authorize(Some(&t), "/portlog.v1.Trace/Trace", gw).unwrap_err();
        assert_eq!(
            e,
            Denied::PermissionDenied(
                "token \"gateway-1\" has role gateway; Trace.Trace needs role investigator or admin".into()
            )
        );
        assert!(matches!(authorize(Some(&t), "/portlog.v1.Trace/Trace", None), Err(Denied::Unauthenticated(_))));
        assert!(matches!(
            authorize(Some(&t), "/portlog.v1.Trace/Trace", Some("Bearer nope")),
            Err(Denied::Unauthenticated(_))
        ));
        let admin = Some("Bearer admin-secret-0123456789ab");
        assert!(authorize(Some(&t), "/portlog.v1.Ledger/Assign", admin).is_ok());
        assert!(authorize(Some(&t), "/portlog.v1.Ledger/Assign", gw).is_err());
        // Health is open; no tokens: all open.
        assert!(authorize(Some(&t), "/grpc.health.v1.Health/Check", None).is_ok());
        assert_eq!(authorize(None, "/portlog.v1.Trace/Trace", None).unwrap(), Caller::anonymous());
    }

    /// Deny by default: a method missing from the table is refused to every role, admin's
    /// included, and without a token it is UNAUTHENTICATED like any other.
    #[test]
    fn methods_missing_from_the_table_are_refused_to_everyone() {
        let t = Tokens::parse(FILE).unwrap();
        let admin = Some("Bearer admin-secret-0123456789ab");
        for path in
            ["/x.Y/Z", "/portlog.v1.Ledger/Purge", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]
        {
            assert_eq!(policy(path), None);
            assert_eq!(access(path), Access::Unlisted);
            assert_eq!(
                authorize(Some(&t), path, admin).unwrap_err(),
                Denied::PermissionDenied(format!(
                    "{} has no access policy: refused to every role (deny by default)",
                    short_method(path)
                ))
            );
            let gw = Some("Bearer gateway-secret-0123456789");
            assert!(matches!(authorize(Some(&t), path, gw), Err(Denied::PermissionDenied(_))));
            assert!(matches!(authorize(Some(&t), path, None), Err(Denied::Unauthenticated(_))));
        }
        assert!(Role::ALL.iter().all(|r| !Access::Unlisted.allows(*r)));
        // Admin-only entries stay admin-only; every entry names itself once.
        assert_eq!(policy("/portlog.v1.Ledger/Assign"), Some(Access::Roles(&[])));
        assert!(Role::ALL.iter().all(|r| Access::Roles(&[]).allows(*r) == (*r == Role::Admin)));
        for (i, (p, a)) in METHOD_ACCESS.iter().enumerate() {
            assert_ne!(*a, Access::Unlisted, "{p}");
            assert!(METHOD_ACCESS[..i].iter().all(|(q, _)| q != p), "{p} is in METHOD_ACCESS twice");
        }
    }

    #[test]
    fn bad_files_are_named() {
        assert!(Tokens::parse("").unwrap_err().to_string().contains("no [[token]]"));
        let short = "[[token]]\ntoken = \"x\"\nname = \"a\"\nrole = \"admin\"\n";
        assert!(Tokens::parse(short).unwrap_err().to_string().contains("at least 16"));
        let role = "[[token]]\ntoken = \"0123456789abcdef\"\nname = \"a\"\nrole = \"root\"\n";
        assert!(Tokens::parse(role).unwrap_err().to_string().contains("unknown variant"));
    }

    #[test]
    fn every_portlog_method_is_in_the_table() {
        assert_eq!(short_method("/portlog.v1.Trace/Trace"), "Trace.Trace");
        assert_eq!(short_method("/grpc.health.v1.Health/Check"), "Health.Check");
        for m in AUDITED {
            assert!(METHOD_ACCESS.iter().any(|(p, _)| p == m), "{m} is audited but not in METHOD_ACCESS");
        }
    }

    #[test]
    fn callers_are_identified_for_the_audit_trail() {
        let t = Tokens::parse(FILE).unwrap();
        assert_eq!(identify(Some(&t), Some("Bearer gateway-secret-0123456789")).name, "gateway-1");
        assert_eq!(identify(Some(&t), Some("Bearer nope")), Caller::anonymous());
        assert_eq!(identify(Some(&t), None), Caller::anonymous());
        assert_eq!(identify(None, Some("Bearer gateway-secret-0123456789")), Caller::anonymous());
    }
}
