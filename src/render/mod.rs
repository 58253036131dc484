//! Renderers: views of facts and findings (terminal line, header, error bodies). They format;
//! they never decide a diagnosis.

pub mod explain;
