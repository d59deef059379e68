//! Generates the gRPC types and stubs of `proto/portlog/v1/` with the vendored `protoc` (a fresh
//! machine needs no system protoc), plus the file descriptor set that the server's reflection
//! service publishes.

use std::path::PathBuf;

const PROTOS: &[&str] =
    &["common", "check", "ingest", "trace", "ledger", "rejects", "consent", "audit", "stats", "retention", "inspect"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of the environment: build scripts run single-threaded; prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("..").join("proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join("portlog/v1").join(format!("{p}.proto"))).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("portlog_v1_descriptor.bin"))
        .compile_protos(&files, &[root])?;
    Ok(())
}
