//! The gRPC methods the daemon serves, read from the compiled descriptor sets it registers with
//! its reflection service, and a raw-bytes codec that calls any of them without its generated
//! types (the access-control walk and the request fuzzing).
#![allow(dead_code)]

use prost::bytes::{Buf, BufMut, Bytes};
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

// The few fields of descriptor.proto read here (prost skips the others).

#[derive(Clone, PartialEq, prost::Message)]
pub struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    pub file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FileDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub package: Option<String>,
    #[prost(message, repeated, tag = "6")]
    pub service: Vec<ServiceDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub method: Vec<MethodDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MethodDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(bool, optional, tag = "5")]
    pub client_streaming: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub server_streaming: Option<bool>,
}

/// The descriptor sets the daemon registers with its reflection service (serve.rs; tonic adds
/// the reflection service's own).
pub fn descriptor_sets() -> [&'static [u8]; 3] {
    [
        portlog_client::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    ]
}

/// One gRPC method.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Method {
    /// `/package.Service/Method`.
    pub path: String,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

impl Method {
    pub fn kind(&self) -> &'static str {
        match (self.client_streaming, self.server_streaming) {
            (false, false) => "unary",
            (true, false) => "client stream",
            (false, true) => "server stream",
            (true, true) => "bidirectional stream",
        }
    }
}

/// The full service name (`package.Service`) → its methods, of these files.
pub fn services(files: &[FileDescriptorProto]) -> BTreeMap<String, Vec<Method>> {
    let mut out = BTreeMap::new();
    for f in files {
        let package = f.package.clone().unwrap_or_default();
        for s in &f.service {
            let name = s.name.clone().unwrap_or_default();
            let full = if package.is_empty() { name } else { format!("{package}.{name}") };
            let methods = s
                .method
                .iter()
                .map(|m| Method {
                    path: format!("/{full}/{}", m.name.clone().unwrap_or_default()),
                    client_streaming: m.client_streaming.unwrap_or(false),
                    server_streaming: m.server_streaming.unwrap_or(false),
                })
                .collect();
            out.insert(full, methods);
        }
    }
    out
}

/// The services of the compiled descriptor sets.
pub fn compiled_services() -> BTreeMap<String, Vec<Method>> {
    let files: Vec<FileDescriptorProto> =
        descriptor_sets().iter().flat_map(|b| FileDescriptorSet::decode(*b).unwrap().file).collect();
    services(&files)
}

/// Every path of these services' methods.
pub fn paths(services: &BTreeMap<String, Vec<Method>>) -> BTreeSet<String> {
    services.values().flatten().map(|m| m.path.clone()).collect()
}

/// Bytes in, bytes out: calls any method without its generated types.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
