//! The proxy modes: the client leg, the relay, and the listeners that tie them together.

pub mod body;
pub mod client_leg;
pub mod context;
pub mod forward;
pub mod headers;
pub mod hosts;
pub mod late_replay;
pub mod pair;
pub mod pool;
pub mod relay;
pub mod request_body;
pub mod request_excerpt;
pub mod respond;
pub mod resumption;
pub mod reverse;
pub mod session;
pub mod sni_gate;
pub mod tunnel;
pub mod upgrade;
pub mod upstream_legs;
pub mod upstream_sender;
