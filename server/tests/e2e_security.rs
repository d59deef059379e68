//! End to end: bearer tokens and roles, and TLS with a self-signed certificate.
#![allow(clippy::unwrap_used)]

mod common;

use common::{now_ms, portlog, Daemon};

const GATEWAY: &str = "gw-secret-0123456789abcdef";
const INGEST: &str = "ingest-secret-0123456789ab";
const INVESTIGATOR: &str = "inv-secret-0123456789abcdef";

fn tokens_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("tokens.toml");
    std::fs::write(
        &p,
        format!(
            "[[token]]\ntoken = \"{GATEWAY}\"\nname = \"gateway-1\"\nrole = \"gateway\"\n\n\
             [[token]]\ntoken = \"{INGEST}\"\nname = \"loader\"\nrole = \"ingest\"\n\n\
             [[token]]\ntoken = \"{INVESTIGATOR}\"\nname = \"alice\"\nrole = \"investigator\"\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn roles_are_checked_per_method() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let d = Daemon::start(&dir.path().join("data"), &["--tokens", tokens.to_str().unwrap()]);
    let ep = d.http();
    let line = format!(
        "{{\"dir\":\"mt\",\"sub_port\":\"106901\",\"peer\":\"13800138000\",\"ts\":{},\"usage\":\"service\",\"text\":\"hi\"}}\n",
        now_ms() - 60_000
    );

    // No token: refused.
    let r = portlog(&["--endpoint", &ep, "stats"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not authenticated") && r.stderr.contains("needs a bearer token"), "{}", r.stderr);
    let r = portlog(&["--endpoint", &ep, "ingest", "-"], Some(&line));
    assert_eq!(r.code, 2, "{}", r.stdout);
    // An unknown token: refused.
    let r = portlog(&["--endpoint", &ep, "--token", "not-a-token-at-all", "stats"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown bearer token"), "{}", r.stderr);
    // The gateway may not ingest nor trace.
    let r = portlog(&["--endpoint", &ep, "--token", GATEWAY, "ingest", "-"], Some(&line));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    let r = portlog(&["--endpoint", &ep, "--token", GATEWAY, "trace", "--number", "13800138000"], None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(
            "permission denied: token \"gateway-1\" has role gateway; Trace.Trace needs role investigator or admin"
        ),
        "{}",
        r.stderr
    );
    // The ingest role ingests (token from the environment variable works too).
    let out = std::process::Command::new(common::cli_bin())
        .args(["--endpoint", &ep, "--json", "ingest", "-"])
        .env("PORTLOG_TOKEN", INGEST)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(line.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The investigator traces; and may not ingest.
    let r = portlog(&["--endpoint", &ep, "--token", INVESTIGATOR, "--json", "trace", "--number", "13800138000"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json_lines().len(), 1);
    let r = portlog(&["--endpoint", &ep, "--token", INVESTIGATOR, "ingest", "-"], Some(&line));
    assert_eq!(r.code, 2);
    // Every role reads stats.
    let r = portlog(&["--endpoint", &ep, "--token", GATEWAY, "--json", "stats"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Health checks need no token, even with tokens configured.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let serving = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(ep.clone()).unwrap().connect().await.unwrap();
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
        h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status
    });
    assert_eq!(serving, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    // The runtime owns the connection's task: dropping it closes the connection (an idle client
    // that never answers would hold graceful shutdown for shutdown_grace_ms).
    drop(rt);
    // The trace was audited with the caller's name.
    let log = d.stderr();
    assert!(log.contains("who=alice") && log.contains("action=\"trace\""), "{log}");
    assert_eq!(d.sigterm().code(), Some(0));
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let https = format!("https://{}", d.addr);
    let r = portlog(&["--endpoint", &https, "--ca-cert", cert.to_str().unwrap(), "--json", "stats"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["records"], 0);
    // Without trusting the certificate: refused, exit 2.
    let r = portlog(&["--endpoint", &https, "stats"], None);
    assert_eq!(r.code, 2);
    // Plain text to a TLS port: exit 2.
    let r = portlog(&["--endpoint", &d.http(), "stats"], None);
    assert_eq!(r.code, 2);
    assert_eq!(d.sigterm().code(), Some(0));
}

#[test]
fn client_certificates_are_required_with_a_client_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    std::fs::write(p("cert.pem"), server.cert.pem()).unwrap();
    std::fs::write(p("key.pem"), server.signing_key.serialize_pem()).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "portlog test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(p("ca.pem"), ca.pem()).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name.push(DnType::CommonName, "gateway-7");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = cp.signed_by(&client_key, &ca).unwrap();
    std::fs::write(p("client.pem"), client_cert.pem()).unwrap();
    std::fs::write(p("client-key.pem"), client_key.serialize_pem()).unwrap();

    let d = Daemon::start(
        &dir.path().join("data"),
        &["--tls-cert", &p("cert.pem"), "--tls-key", &p("key.pem"), "--tls-client-ca", &p("ca.pem")],
    );
    let https = format!("https://{}", d.addr);
    let (cert, client, client_key) = (p("cert.pem"), p("client.pem"), p("client-key.pem"));
    let base = ["--endpoint", &https, "--ca-cert", &cert];
    let with_cert = [&base[..], &["--client-cert", &client, "--client-key", &client_key, "stats"]].concat();
    let r = portlog(&with_cert, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let without = [&base[..], &["stats"]].concat();
    let r = portlog(&without, None);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert_eq!(d.sigterm().code(), Some(0));
}
