//! Access control, walked from the descriptors. Every method of every service the daemon serves
//! (`portlog.v1.*`, `grpc.health.v1.Health`, `grpc.reflection.v1.ServerReflection`) is
//! enumerated from the compiled file descriptor sets that the daemon registers with its
//! reflection service — not from a list written here — and cross-checked against what the
//! running daemon's reflection lists. Each must have an entry in the role table
//! (`server/src/auth.rs`, `METHOD_ACCESS`), and the table must have no entry for a method that
//! is not served (stale).
//!
//! Then the real daemon, with one token per role of cli.md, is called on every method (one empty
//! message, valid for every proto3 message, through a raw-bytes codec; authorization happens
//! before any handler reads it) with no token and an unknown token (UNAUTHENTICATED), with each
//! role the table refuses (PERMISSION_DENIED) and with each role it allows (anything else, but
//! not UNIMPLEMENTED: the method must be served). Methods missing from the table are refused to
//! every token, admin's included (deny by default).
//!
//! Health is open, as the code and docs/grpc.md intend: load balancers and orchestrators probe it
//! without credentials, even when `--tokens` is given, so no token, an unknown token and every
//! role all pass. Reflection needs a valid token of any role.
#![allow(clippy::unwrap_used)]

mod common;

/// The daemon's own role table and policy (the server is a binary crate: its source is
/// compiled in here).
#[allow(dead_code)]
#[path = "../src/auth.rs"]
mod auth;

#[path = "common/methods.rs"]
mod methods;

use auth::{Access, Role, METHOD_ACCESS};
use common::Daemon;
use methods::{compiled_services, paths, services, FileDescriptorProto, Method, RawCodec};
use prost::bytes::Bytes;
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_reflection::pb::v1 as refl;

/// The table covers every compiled method and nothing else. Needs no daemon: names the method
/// that has no policy, or the entry that is stale.
#[test]
fn every_method_has_a_policy_and_no_policy_is_stale() {
    let compiled = compiled_services();
    let served = paths(&compiled);
    assert!(compiled.keys().any(|s| s.starts_with("portlog.v1.")), "no portlog.v1 service in {compiled:?}");
    let missing: Vec<&String> = served.iter().filter(|p| auth::policy(p).is_none()).collect();
    assert!(
        missing.is_empty(),
        "methods with no entry in auth::METHOD_ACCESS (refused to everyone; add a policy): {missing:?}"
    );
    let stale: Vec<&str> = METHOD_ACCESS.iter().map(|(p, _)| *p).filter(|p| !served.contains(*p)).collect();
    assert!(stale.is_empty(), "entries of auth::METHOD_ACCESS for methods not served (stale): {stale:?}");
    assert_eq!(METHOD_ACCESS.len(), served.len(), "a method is in METHOD_ACCESS twice");
    for p in auth::AUDITED {
        assert!(served.contains(*p), "{p} is audited but not served");
    }
    // Health is open; nothing else is.
    for (p, a) in METHOD_ACCESS {
        assert_eq!(*a == Access::Open, p.starts_with("/grpc.health.v1.Health/"), "{p}: {a:?}");
    }
}

/// The table against the roles of cli.md (`--tokens`): gateway the check, ingest the append,
/// investigator the reads (trace, reject lists and export, audit, ledger show, retention history,
/// inspection), admin everything; and, for any valid token, stats and reflection; health for
/// anyone. A change of the table that widens or narrows a role fails here.
#[test]
fn each_role_may_call_what_cli_md_says() {
    let served = paths(&compiled_services());
    let for_all = |p: &str| matches!(auth::access(p), Access::Open | Access::AnyRole);
    let may = |r: Role| -> BTreeSet<String> {
        served.iter().filter(|p| auth::access(p).allows(r) && !for_all(p)).map(|p| auth::short_method(p)).collect()
    };
    let set = |ms: &[&str]| -> BTreeSet<String> { ms.iter().map(|m| m.to_string()).collect() };
    assert_eq!(may(Role::Gateway), set(&["Check.Check", "Check.CheckBatch", "Check.CheckStream"]));
    assert_eq!(may(Role::Ingest), set(&["Ingest.Append"]));
    let reads = [
        "Trace.Trace",
        "Rejects.ListBySubPort",
        "Rejects.ListByNumber",
        "Rejects.Export",
        "Audit.List",
        "Ledger.Show",
        "Retention.History",
        "Inspect.Run",
    ];
    assert_eq!(may(Role::Investigator), set(&reads));
    let everything: BTreeSet<String> = served.iter().filter(|p| !for_all(p)).map(|p| auth::short_method(p)).collect();
    assert_eq!(may(Role::Admin), everything);
    let any: BTreeSet<String> = served.iter().filter(|p| for_all(p)).map(|p| auth::short_method(p)).collect();
    assert_eq!(any, set(&["Stats.Get", "ServerReflection.ServerReflectionInfo", "Health.Check", "Health.Watch"]));
}

/// Calls `path` with one empty message (whatever its kind: on the wire every call is a stream of
/// messages; a refusal comes before any message). The status of the call as far as it matters
/// here: the refusal, the first message (OK) or the end of the response stream.
async fn call(ch: &Channel, path: &str, token: Option<&str>) -> Status {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    if let Err(e) = grpc.ready().await {
        return Status::unavailable(format!("channel not ready: {e}"));
    }
    let mut req = tonic::Request::new(tokio_stream::iter([Bytes::new()]));
    if let Some(t) = token {
        req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    let fut = async {
        match grpc.streaming(req, path, RawCodec).await {
            Err(st) => st,
            Ok(resp) => match resp.into_inner().message().await {
                Ok(Some(_)) => Status::ok("a message"),
                Ok(None) => Status::ok("ended"),
                Err(st) => st,
            },
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| Status::deadline_exceeded("no answer within 20 s"))
}

/// One reflection round: the responses to these requests, on one stream.
async fn reflect(
    ch: &Channel,
    token: &str,
    reqs: Vec<refl::server_reflection_request::MessageRequest>,
) -> Vec<refl::server_reflection_response::MessageResponse> {
    let mut client = refl::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let reqs: Vec<refl::ServerReflectionRequest> = reqs
        .into_iter()
        .map(|m| refl::ServerReflectionRequest { host: String::new(), message_request: Some(m) })
        .collect();
    let mut req = tonic::Request::new(tokio_stream::iter(reqs));
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut stream = client.server_reflection_info(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        out.push(r.message_response.unwrap());
    }
    out
}

/// The services the running daemon's reflection lists, with their methods as it describes them.
async fn reflected_services(ch: &Channel, token: &str) -> BTreeMap<String, Vec<Method>> {
    use refl::server_reflection_request::MessageRequest;
    use refl::server_reflection_response::MessageResponse;
    let names: Vec<String> = match reflect(ch, token, vec![MessageRequest::ListServices(String::new())]).await.pop() {
        Some(MessageResponse::ListServicesResponse(l)) => l.service.into_iter().map(|s| s.name).collect(),
        other => panic!("list_services answered {other:?}"),
    };
    let asks = names.iter().map(|n| MessageRequest::FileContainingSymbol(n.clone())).collect();
    // A file sent once on a stream may be left out of later answers: gather them all.
    let mut files = BTreeMap::new();
    for r in reflect(ch, token, asks).await {
        let MessageResponse::FileDescriptorResponse(f) = r else { panic!("file_containing_symbol answered {r:?}") };
        for bytes in f.file_descriptor_proto {
            let fd = FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            files.insert(fd.name.clone().unwrap_or_default(), fd);
        }
    }
    let all = services(&files.into_values().collect::<Vec<_>>());
    names.iter().map(|n| (n.clone(), all.get(n).cloned().unwrap_or_else(|| panic!("no descriptor of {n}")))).collect()
}

fn token_of(role: Role) -> String {
    format!("{}-secret-0123456789abcdef", role.as_str())
}

const UNKNOWN_TOKEN: &str = "not-a-token-of-this-daemon-0123";

/// What a call must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthenticated,
    PermissionDenied,
    /// Past the gate: any code but those two, nor UNIMPLEMENTED.
    Allowed,
}

impl Expect {
    fn met(self, st: &Status) -> bool {
        match self {
            Expect::Unauthenticated => st.code() == Code::Unauthenticated,
            Expect::PermissionDenied => st.code() == Code::PermissionDenied,
            Expect::Allowed => {
                !matches!(st.code(), Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented)
            }
        }
    }
}

/// Who calls, and what the table says they must get.
fn cases(access: Access) -> Vec<(String, Option<String>, Expect)> {
    let anonymous = if access == Access::Open { Expect::Allowed } else { Expect::Unauthenticated };
    let mut out = vec![
        ("no token".to_string(), None, anonymous),
        ("an unknown token".to_string(), Some(UNKNOWN_TOKEN.to_string()), anonymous),
    ];
    for r in Role::ALL {
        let expect = if access.allows(r) { Expect::Allowed } else { Expect::PermissionDenied };
        out.push((format!("role {}", r.as_str()), Some(token_of(r)), expect));
    }
    out
}

#[test]
fn every_method_is_refused_or_allowed_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let file: String = Role::ALL
        .iter()
        .map(|r| {
            format!(
                "[[token]]\ntoken = \"{}\"\nname = \"{}-1\"\nrole = \"{}\"\n\n",
                token_of(*r),
                r.as_str(),
                r.as_str()
            )
        })
        .collect();
    std::fs::write(&tokens, file).unwrap();
    let d = Daemon::start(&dir.path().join("data"), &["--tokens", tokens.to_str().unwrap()]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (walked, calls, failures) = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(d.http()).unwrap().connect().await.unwrap();

        // What is walked is what the daemon serves: the compiled descriptors, as its reflection
        // lists and describes them.
        let compiled = compiled_services();
        let reflected = reflected_services(&ch, &token_of(Role::Admin)).await;
        assert_eq!(reflected, compiled, "the daemon's reflection and the compiled descriptor sets differ");

        let mut failures = Vec::new();
        let mut calls = 0;
        let methods: Vec<&Method> = compiled.values().flatten().collect();
        for m in &methods {
            let Some(access) = auth::policy(&m.path) else {
                failures.push(format!("{} ({}) has no policy in auth::METHOD_ACCESS", m.path, m.kind()));
                continue;
            };
            for (who, token, expect) in cases(access) {
                let st = call(&ch, &m.path, token.as_deref()).await;
                calls += 1;
                let mut ok = expect.met(&st);
                if ok && expect == Expect::PermissionDenied {
                    // The refusal names the method.
                    ok = st.message().contains(&auth::short_method(&m.path));
                }
                if !ok {
                    failures.push(format!(
                        "{} ({}, {access:?}) with {who}: expected {expect:?}, got {:?}: {}",
                        m.path,
                        m.kind(),
                        st.code(),
                        st.message()
                    ));
                }
            }
        }

        // Deny by default, live: a method with no policy is refused to admin too.
        for path in
            ["/portlog.v1.Ledger/Purge", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "/x.Y/Z"]
        {
            assert_eq!(auth::policy(path), None, "{path}");
            for (who, token, expect) in [
                ("no token", None, Code::Unauthenticated),
                ("role admin", Some(token_of(Role::Admin)), Code::PermissionDenied),
                ("role investigator", Some(token_of(Role::Investigator)), Code::PermissionDenied),
            ] {
                let st = call(&ch, path, token.as_deref()).await;
                calls += 1;
                if st.code() != expect {
                    failures.push(format!(
                        "{path} (no policy) with {who}: expected {expect:?}, got {:?}: {}",
                        st.code(),
                        st.message()
                    ));
                }
            }
        }
        (methods.len(), calls, failures)
    });
    // The runtime owns the connection: dropping it closes the connection, so that graceful
    // shutdown does not wait for an idle client.
    drop(rt);
    eprintln!("walked {walked} methods, {calls} calls");
    assert!(failures.is_empty(), "{} of {calls} calls answered wrongly:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(walked, METHOD_ACCESS.len());
    assert_eq!(d.sigterm().code(), Some(0));
}
