//! The only unsafe code in mtlscope: the three OpenSSL calls rust-openssl does not wrap, behind
//! safe functions.
//!
//! - `SSL_set_msg_callback`: every TLS message OpenSSL sends or receives, after decryption:
//!   the handshake messages of the first handshake, of a TLS 1.2 renegotiation and of TLS 1.3
//!   post-handshake auth, and alerts (which in TLS 1.3 are encrypted on the wire).
//! - `SSL_set_cert_cb`: called when the client must answer a CertificateRequest, at whatever
//!   moment the server sends it, so the identity is chosen then, from that request's CA names.
//! - `SSL_CTX_set_post_handshake_auth`: offer TLS 1.3 post-handshake authentication.
//!
//! The callbacks reach their Rust [`Observer`] through the `SSL`'s ex-data slot, which OpenSSL
//! frees with the `SSL`, so no pointer outlives what it points to. A panic inside an observer
//! is caught at the boundary (unwinding into C is undefined) and treated as "no certificate".

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContextBuilder, SslRef};
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

/// The record content type of an alert, as the message callback reports it.
pub const CONTENT_ALERT: i32 = 21;
/// The record content type of a handshake message.
pub const CONTENT_HANDSHAKE: i32 = 22;
/// Not a record type: OpenSSL's report of a TLS 1.3 record's inner content type (one byte).
pub const CONTENT_INNER_TYPE: i32 = 256;

/// What the callbacks of one `SSL` report to.
pub trait Observer: Send + Sync + 'static {
    /// A TLS message (`content_type` 21 alert, 22 handshake, …) in plaintext; `sent` is true for
    /// messages OpenSSL wrote. Handshake messages include their 4-byte header.
    fn message(&self, sent: bool, content_type: i32, bytes: &[u8]);

    /// The server asked for a certificate: set one on `ssl` (certificate, key, chain) or leave
    /// it empty to answer with none. Returns false to abort the handshake.
    fn choose_certificate(&self, ssl: &mut SslRef) -> bool;
}

extern "C" {
    fn SSL_set_msg_callback(
        ssl: *mut openssl_sys::SSL,
        cb: Option<
            unsafe extern "C" fn(
                write_p: c_int,
                version: c_int,
                content_type: c_int,
                buf: *const c_void,
                len: usize,
                ssl: *mut openssl_sys::SSL,
                arg: *mut c_void,
            ),
        >,
    );
    fn SSL_set_cert_cb(
        ssl: *mut openssl_sys::SSL,
        cb: Option<unsafe extern "C" fn(ssl: *mut openssl_sys::SSL, arg: *mut c_void) -> c_int>,
        arg: *mut c_void,
    );
}

type Shared = Arc<dyn Observer>;

fn index() -> Result<Index<Ssl, Shared>, ErrorStack> {
    static INDEX: OnceLock<Index<Ssl, Shared>> = OnceLock::new();
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let i = Ssl::new_ex_index::<Shared>()?;
    Ok(*INDEX.get_or_init(|| i))
}

/// Attach `observer` to `ssl`: it sees every message and chooses the client certificate.
pub fn observe(ssl: &mut SslRef, observer: Arc<dyn Observer>) -> Result<(), ErrorStack> {
    ssl.set_ex_data(index()?, observer);
    // SAFETY: `ssl` is a live SSL; the callbacks are `extern "C"` functions with the signatures
    // OpenSSL declares, and they only read the observer stored in `ssl` itself.
    unsafe {
        SSL_set_msg_callback(ssl.as_ptr(), Some(msg_callback));
        SSL_set_cert_cb(ssl.as_ptr(), Some(cert_callback), std::ptr::null_mut());
    }
    Ok(())
}

/// Offer TLS 1.3 post-handshake authentication on connections made from `ctx`.
pub fn enable_post_handshake_auth(ctx: &mut SslContextBuilder) {
    // SAFETY: a plain setter on a live SSL_CTX.
    unsafe { openssl_sys::SSL_CTX_set_post_handshake_auth(ctx.as_ptr(), 1) }
}

fn observer_of(ssl: *mut openssl_sys::SSL) -> Option<Shared> {
    if ssl.is_null() {
        return None;
    }
    // SAFETY: OpenSSL passes the SSL the callback was set on, alive for the call.
    let ssl = unsafe { SslRef::from_ptr(ssl) };
    ssl.ex_data(index().ok()?).cloned()
}

unsafe extern "C" fn msg_callback(
    write_p: c_int,
    _version: c_int,
    content_type: c_int,
    buf: *const c_void,
    len: usize,
    ssl: *mut openssl_sys::SSL,
    _arg: *mut c_void,
) {
    let bytes: &[u8] = if buf.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: OpenSSL passes `len` readable bytes at `buf`, valid for the call.
        unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Some(obs) = observer_of(ssl) {
            obs.message(write_p != 0, content_type, bytes);
        }
    }));
}

unsafe extern "C" fn cert_callback(ssl: *mut openssl_sys::SSL, _arg: *mut c_void) -> c_int {
    let ok = catch_unwind(AssertUnwindSafe(|| {
        let Some(obs) = observer_of(ssl) else {
            return true;
        };
        // SAFETY: as in `observer_of`; OpenSSL expects the callback to modify this SSL.
        let ssl = unsafe { SslRef::from_ptr_mut(ssl) };
        obs.choose_certificate(ssl)
    }));
    c_int::from(ok.unwrap_or(true))
}

#[cfg(test)]
#[path = "ffi_tests.rs"]
mod tests;
