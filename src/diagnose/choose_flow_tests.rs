//! `certs choose`'s per-leg table on a diagnosed flow: here rather than in `choose`, because
//! the flow is built with the diagnosis's `FlowBuilder` and `choose` must not import `diagnose`.

use super::test_support::{cr, good_chain, identity, success_builder};

#[test]
fn flow_table_covers_the_leg_that_was_asked_with_the_identities_held() {
    let flow = success_builder()
        .upstream(|l| {
            l.cert_request = Some(cr(crate::facts::Phase::Handshake, &["Other Root"]));
            l.chain = vec![];
            l.identity = Some(identity(None, &[("client.pem", good_chain())], "no match"));
        })
        .build();
    let v = crate::choose::flow::flow_json(&flow);
    let legs = v.as_array().unwrap();
    let up = legs.iter().find(|l| l["leg"] == "upstream").unwrap();
    assert_eq!(up["offered"][0], "client.pem");
    let go = up["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stack"] == "go")
        .unwrap();
    assert_eq!(go["sends"], serde_json::Value::Null);
    assert_eq!(go["candidates"][0]["eligible"], false);
    let openssl = &up["stacks"][0];
    assert_eq!(openssl["sends"], "client.pem");
    assert_eq!(up["stacks"][4]["basis"], "documented");
}
