//! `portlog-client`: the Rust client and the `portlog` command-line tool (`shared/cli.md`).
//!
//! Empty in this build: the client, its generated gRPC types and the CLI arrive with the server
//! issue. The crate exists so that the workspace has its final shape.

#![forbid(unsafe_code)]
