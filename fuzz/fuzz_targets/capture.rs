//! Fuzz target for `analyze`'s capture front end and TCP reassembly: the input is read as a
//! pcap or pcapng file (the fuzzer finds the magic numbers quickly; the corpus seeds real
//! captures), every frame decoded and reassembled, every connection read as TLS and turned into
//! a record. Nothing may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut n = 0usize;
    let _ = mtlscope::analyze::analyze_bytes("fuzz.pcap", data, None, &mut |flow| {
        n += 1;
        let _ = mtlscope::diagnose::diagnose(&flow);
    });
});
