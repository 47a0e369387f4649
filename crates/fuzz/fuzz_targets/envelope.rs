//! The envelope parser with arbitrary bytes.
//!
//! Properties: parsing never panics; a request that parses serialises and parses again
//! to an equal envelope; a request refused is answered with a response envelope that
//! serialises to JSON and reads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onex_host::Envelope;
use onex_host::envelope::Stamp;
use onex_host::envelope::parse::parse_request;

fuzz_target!(|data: &[u8]| {
    let stamp = Stamp::deterministic(0);
    match parse_request(data, &stamp) {
        Ok(request) => {
            let envelope = request.into_envelope();
            let json = envelope.to_json_bytes();
            let again = parse_request(&json, &Stamp::deterministic(1))
                .unwrap_or_else(|rejected| {
                    panic!(
                        "a parsed request, serialised, is refused: {:?}\n{}",
                        rejected.error,
                        String::from_utf8_lossy(&json)
                    )
                })
                .into_envelope();
            assert_eq!(envelope, again, "{}", String::from_utf8_lossy(&json));
        }
        Err(rejected) => {
            let response = rejected.respond(&stamp);
            let json = response.to_json_bytes();
            let again: Envelope = serde_json::from_slice(&json).unwrap_or_else(|error| {
                panic!(
                    "an error response is not an envelope: {error}\n{}",
                    String::from_utf8_lossy(&json)
                )
            });
            assert_eq!(response, again, "{}", String::from_utf8_lossy(&json));
        }
    }
});
