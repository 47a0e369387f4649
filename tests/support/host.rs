//! Hosts built from fixtures, and serving a batch of messages through the real bus.

use futures_lite::{StreamExt, future};
use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::Stamp;
use onex_host::host::RuntimeHost;
use onex_host::wiring::{self, Profile};

use super::fixture::Fixture;

/// The dev-profile host of `contract` in `fixture`, with ids counting up from `seed`.
pub fn build(fixture: &Fixture, contract: &str, seed: u64) -> RuntimeHost {
    let contract =
        RuntimeHostContract::load(&fixture.path(contract)).unwrap_or_else(|e| panic!("{e}"));
    wiring::build_host(&contract, Profile::Development, Stamp::deterministic(seed))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts `host`, publishes `messages` to its input topic while it runs, and returns the
/// responses from its output topic once there is one per message; the host is stopped
/// (not shut down) afterwards.
pub async fn serve(host: &RuntimeHost, messages: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let inputs = host.start().await.expect("the host starts");
    let mut responses = host
        .bus()
        .subscribe(host.output_topic())
        .expect("subscribes");
    let count = messages.len();
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let feeding = async {
        for message in messages {
            host.bus()
                .publish(host.input_topic(), message)
                .await
                .expect("publishes");
        }
    };
    let receiving = async {
        let mut received = Vec::with_capacity(count);
        while received.len() < count {
            received.push(responses.next().await.expect("a response"));
        }
        drop(stop);
        received
    };
    let hosting = host.run(inputs, async move {
        let _ = stopped.recv().await;
    });
    let ((), (received, answered)) = future::zip(feeding, future::zip(receiving, hosting)).await;
    assert_eq!(answered.expect("the host runs"), count as u64);
    received
}
