//! The wire tap: TLS records and plaintext handshake messages seen below TLS.
pub mod alert_names;
