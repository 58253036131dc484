//! mtlscope: a TLS-terminating debugging proxy that explains client-certificate failures.
//!
//! The pipeline is capture → facts → diagnose → render: capturers write [`facts`], the
//! [`diagnose`] stage turns facts into findings, and renderers show both.
#![forbid(unsafe_code)]

pub mod cert;
pub mod cli;
pub mod diagnose;
pub mod error;
pub mod facts;
pub mod observe;
pub mod pki;
pub mod record;
pub mod render;
pub mod wire;
