//! Renderers: views of facts and findings (terminal line, header, error bodies). They format;
//! they never decide a diagnosis.

pub mod diff;
pub mod explain;
pub mod har;
pub mod har_stream;
pub mod html;
pub mod ladder;
pub mod paths;
pub mod probe;
pub mod report;
