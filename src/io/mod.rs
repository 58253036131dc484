//! Byte-stream adapters shared by the legs.

pub mod cut;
pub mod idle;
pub mod linger;
pub mod rewind;
pub mod stdout;

pub use rewind::Rewind;

use tokio::io::{AsyncRead, AsyncWrite};

/// Any byte stream a leg can drive.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed byte stream.
pub type BoxIo = Box<dyn Io>;
