//! Lab servers: small in-process peers for the demo and the tests, built with the same stack as
//! the proxy, so `mtlscope demo` needs nothing else running.

pub mod echo;
mod silent;
pub mod upstream;
