//! mtlscope: a TLS-terminating debugging proxy that explains client-certificate failures.
//!
//! The pipeline is capture → facts → diagnose → render: capturers write [`facts`], the
//! [`diagnose`] stage turns facts into findings, and renderers show both.
//!
//! Unsafe code is denied everywhere except `upstream::openssl::ffi`: the few OpenSSL calls
//! rust-openssl does not wrap, behind safe functions.
#![deny(unsafe_code)]

pub mod analyze;
pub mod capture;
pub mod cert;
pub mod choose;
pub mod cli;
pub mod diagnose;
pub mod error;
pub mod facts;
pub mod faults;
pub mod io;
pub mod lab;
pub mod lifecycle;
pub mod offload;
pub mod paths;
pub mod pki;
pub mod probe;
pub mod proxy;
pub mod record;
pub mod recording;
pub mod render;
pub mod revocation;
pub mod settings;
pub mod ui;
pub mod upstream;
pub mod vendor_words;
pub mod warm;
pub mod wire;
