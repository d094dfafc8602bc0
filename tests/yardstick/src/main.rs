//! The smallest Lambda this toolchain builds: it answers every event with the event. `make
//! bench` starts it beside the real functions under the same Runtime API emulator, so their
//! cold starts are read against what the runtime itself costs on the same machine that day.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
