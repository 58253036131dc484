//! The web view's memory, bounded in bytes: the request and response text of a live flow is
//! cut to [`VIEW_TEXT`] characters before it is kept (the recording keeps it whole), and each
//! flow's size is estimated so the store can hold a number of megabytes rather than a number
//! of flows of any size.

use crate::facts::Flow;
use std::sync::Arc;

/// The most of any one recorded text (request target, header value, body excerpt, error) the
/// web view keeps, in characters.
pub const VIEW_TEXT: usize = 2048;

/// Megabytes of flows the web view keeps when not told (`--ui-max-mb`).
pub const DEFAULT_MAX_MB: usize = 64;

/// Cut `s` to [`VIEW_TEXT`] bytes (at a character boundary), saying how much was left out.
/// The cut text is a new, small allocation: truncating in place would keep the whole
/// capacity alive.
fn cut(s: &mut String) {
    if s.len() <= VIEW_TEXT {
        return;
    }
    let mut end = VIEW_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let left = s.len() - end;
    let mut cut = format!("{}… ({left} more bytes in the recording)", &s[..end]);
    cut.shrink_to_fit();
    *s = cut;
}

/// [`cut_for_view`] for a flow shared with the recording writer: copied only when one of its
/// texts is too long to keep (most are not, and then the view keeps the writer's copy).
pub fn cut_shared_for_view(flow: &mut Arc<Flow>) {
    if needs_cut(flow) {
        cut_for_view(Arc::make_mut(flow));
    }
}

/// Whether [`cut_for_view`] would change `flow`.
fn needs_cut(flow: &Flow) -> bool {
    let long = |s: &String| s.len() > VIEW_TEXT;
    let request = flow.request.as_ref().is_some_and(|r| {
        long(&r.uri)
            || r.headers.iter().any(|h| long(&h.value))
            || r.body_excerpt.as_ref().is_some_and(long)
    });
    let response = flow.response.as_ref().is_some_and(|r| {
        r.headers.iter().any(|h| long(&h.value)) || r.body_excerpt.as_ref().is_some_and(long)
    });
    request || response || flow.error.as_ref().is_some_and(long)
}

/// Cut the texts of `flow` a client controls to [`VIEW_TEXT`] for the web view.
pub fn cut_for_view(flow: &mut Flow) {
    if let Some(r) = flow.request.as_mut() {
        cut(&mut r.uri);
        r.headers.iter_mut().for_each(|h| cut(&mut h.value));
        if let Some(b) = r.body_excerpt.as_mut() {
            cut(b);
        }
    }
    if let Some(r) = flow.response.as_mut() {
        r.headers.iter_mut().for_each(|h| cut(&mut h.value));
        if let Some(b) = r.body_excerpt.as_mut() {
            cut(b);
        }
    }
    if let Some(e) = flow.error.as_mut() {
        cut(e);
    }
}

/// About how many bytes one leg holds: its certificates, events and request.
fn leg_bytes(leg: &crate::facts::Leg) -> usize {
    1024 + leg.chain.len() * 1536
        + leg.events.len() * 128
        + leg.cert_request.as_ref().map_or(0, |_| 1024)
}

/// About how many bytes of texts `headers` hold.
fn headers_bytes(headers: &[crate::facts::Header]) -> usize {
    headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 48)
        .sum()
}

/// About how many bytes `flow` holds in memory, counted from the sizes of its texts and lists
/// (serialising every flow to measure it cost more than the rest of the web view). A leg is
/// shared by every exchange of its connection (an `Arc`), so each holder is charged its share.
pub fn approx_bytes(flow: &Flow) -> usize {
    let share = |leg: &Option<std::sync::Arc<crate::facts::Leg>>| {
        leg.as_ref()
            .map_or(0, |l| leg_bytes(l) / std::sync::Arc::strong_count(l).max(1))
    };
    let request = flow.request.as_ref().map_or(0, |r| {
        r.uri.len() + headers_bytes(&r.headers) + r.body_excerpt.as_ref().map_or(0, String::len)
    });
    let response = flow.response.as_ref().map_or(0, |r| {
        headers_bytes(&r.headers) + r.body_excerpt.as_ref().map_or(0, String::len)
    });
    let error = flow.error.as_ref().map_or(0, String::len);
    512 + request
        + response
        + error
        + flow.findings.len() * 1024
        + share(&flow.client_leg)
        + share(&flow.upstream_leg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::FlowBuilder;

    #[test]
    fn long_request_text_is_cut_and_counted() {
        let long = format!("/?q={}", "a".repeat(60_000));
        let mut flow = FlowBuilder::reverse()
            .get(&long)
            .response(200, "", &[])
            .build();
        let before = approx_bytes(&flow);
        cut_for_view(&mut flow);
        let uri = &flow.request.as_ref().unwrap().uri;
        assert!(uri.len() < VIEW_TEXT + 64, "{}", uri.len());
        assert!(uri.ends_with("more bytes in the recording)"), "{uri}");
        assert!(approx_bytes(&flow) < before / 10);
        assert!(flow.request.as_ref().unwrap().uri.capacity() < VIEW_TEXT + 64);
    }

    #[test]
    fn a_shared_flow_is_copied_only_when_a_text_is_cut() {
        let short = Arc::new(
            FlowBuilder::reverse()
                .get("/")
                .response(200, "", &[])
                .build(),
        );
        let mut kept = short.clone();
        cut_shared_for_view(&mut kept);
        assert!(
            Arc::ptr_eq(&short, &kept),
            "nothing to cut: the writer's copy is kept"
        );

        let long = format!("/?q={}", "a".repeat(60_000));
        let whole = Arc::new(
            FlowBuilder::reverse()
                .get(&long)
                .response(200, "", &[])
                .build(),
        );
        let mut viewed = whole.clone();
        cut_shared_for_view(&mut viewed);
        assert!(!Arc::ptr_eq(&whole, &viewed));
        assert_eq!(
            whole.request.as_ref().unwrap().uri,
            long,
            "the recording's copy stays whole"
        );
        let uri = &viewed.request.as_ref().unwrap().uri;
        assert!(uri.ends_with("more bytes in the recording)"), "{uri}");
    }
}
