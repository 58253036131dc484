//! Views of facts and findings. A renderer formats; it never decides.

pub mod explain;
