//! The simulated phone's SIP NOTIFY agent takes any datagram without panicking; whatever it answers is a SIP
//! response, and it never honours a request without the right credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_phone::sip::NotifyAgent;

fuzz_target!(|data: &[u8]| {
    let mut agent = NotifyAgent::new("00112233445566778899aabbccddeeff".into(), "phone");
    if let Some(answer) = agent.handle(data, "2001", "pw") {
        assert!(answer.response.starts_with("SIP/2.0 "));
        // A response the fuzzer cannot compute (the MD5 over its own bytes) would be needed to authenticate.
        if answer.event.is_some() {
            let text = String::from_utf8_lossy(data);
            assert!(text.contains("response="), "{text}");
        }
    }
});
