//! Renderers: views of facts and findings (terminal line, header, error bodies). They format;
//! they never decide a diagnosis.

pub mod diff;
pub mod escape;
pub mod explain;
pub mod har;
pub mod har_stream;
pub mod html;
pub mod ladder;
pub mod ladder_svg;
mod leg_facts;
pub mod paths;
pub mod probe;
pub mod report;
