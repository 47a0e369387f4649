//! Hosts built from fixtures, and serving a batch of messages through the real bus.

use futures_lite::{StreamExt, future};
use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::Stamp;
use onex_host::host::RuntimeHost;
use onex_host::latch::Latch;
use onex_host::wiring::{self, Profile};

use super::fixture::Fixture;

/// The dev-profile host of `contract` in `fixture`, with ids counting up from `seed`.
pub fn build(fixture: &Fixture, contract: &str, seed: u64) -> RuntimeHost {
    build_with(fixture, contract, seed, 1)
}

/// [`build`], handling up to `max_in_flight` requests at once.
pub fn build_with(
    fixture: &Fixture,
    contract: &str,
    seed: u64,
    max_in_flight: usize,
) -> RuntimeHost {
    let contract =
        RuntimeHostContract::load(&fixture.path(contract)).unwrap_or_else(|e| panic!("{e}"));
    wiring::build_host(
        &contract,
        Profile::Development,
        Stamp::deterministic(seed),
        max_in_flight,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts `host`, publishes `messages` to its input topic while it consumes, closes the
/// topic, and returns the responses from its output topic, one per message, in the order
/// they were published.
pub async fn serve(host: &RuntimeHost, messages: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let inputs = host.start().await.expect("the host starts");
    let mut responses = host
        .bus()
        .subscribe(host.output_topic())
        .expect("subscribes");
    let count = messages.len();
    let feeding = async {
        for message in messages {
            host.bus()
                .publish(host.input_topic(), message)
                .await
                .expect("publishes");
        }
        host.bus().close_topic(host.input_topic());
    };
    let receiving = async {
        let mut received = Vec::with_capacity(count);
        while received.len() < count {
            received.push(responses.next().await.expect("a response").message);
        }
        received
    };
    let never = Latch::new();
    let consuming = host.consume(inputs, &never);
    let ((), (received, consumed)) = future::zip(feeding, future::zip(receiving, consuming)).await;
    assert_eq!(consumed.expect("the host consumes"), count as u64);
    received
}
