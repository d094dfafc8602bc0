//! `walkthrough BASE_URL`: the presence compare-and-set against a running Genesys simulator,
//! narrated. Used by `make demo` until the full scripted day exists.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use shared::clock::{Deadline, SystemClock};
use shared::genesys::wire::PresenceChange;
use shared::genesys::{
    CasOutcome, ClientCredentials, GenesysClient, GenesysConfig, GenesysHosts, StaticCredentials,
};
use shared::model::{PresenceSnapshot, SystemPresence};

fn describe(snapshot: &PresenceSnapshot) -> String {
    format!(
        "{} (message {:?}, modified {}, tag {})",
        snapshot.system_presence,
        snapshot.message,
        snapshot.modified_date.format("%H:%M:%S%.3f"),
        snapshot.tag()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url = std::env::args()
        .nth(1)
        .context("usage: walkthrough BASE_URL")?;
    let clock = Arc::new(SystemClock);
    let client = GenesysClient::new(
        GenesysConfig::new(GenesysHosts::single_base(&base_url)?),
        Arc::new(StaticCredentials(ClientCredentials::new(
            "demo-client",
            "demo-secret",
        ))),
        clock.clone(),
    )?;
    let deadline = || Deadline::after(clock.as_ref(), Duration::from_secs(10));
    let http = reqwest::Client::new();

    println!("1. Look up the agent by e-mail (POST /api/v2/users/search)");
    let user = client
        .find_user_by_email("ada@example.com", deadline())
        .await?
        .context("ada@example.com not found")?;
    let user_id = shared::model::UserId::parse(&user.id)?;
    println!("   -> {} is {}", user.name.unwrap_or_default(), user_id);

    println!("2. Resolve 'Meeting' through the presence definitions API");
    let definitions = client.presence_definitions(deadline()).await?;
    let meeting = definitions
        .iter()
        .find(|d| d.is_primary() && d.system_presence == SystemPresence::Meeting)
        .context("no Meeting definition")?;
    let meeting_id = shared::model::PresenceDefinitionId::parse(&meeting.id)?;
    println!("   -> Meeting is definition {meeting_id}");

    println!(
        "3. Snapshot the presence, then set Meeting only if it is unchanged (compare-and-set)"
    );
    let before = client.get_presence(&user_id, deadline()).await?;
    println!("   before: {}", describe(&before));
    let change = PresenceChange::to(&meeting_id, Some("In a meeting".to_owned()));
    let CasOutcome::Applied { after, .. } = client
        .compare_and_set_presence(&user_id, &before.tag(), &change, deadline())
        .await?
    else {
        bail!("the presence changed under us");
    };
    println!("   after:  {}", describe(&after));

    println!("4. The agent changes their presence by hand during the meeting");
    let response = http
        .put(format!("{base_url}/sim/users/{user_id}/presence"))
        .json(&json!({"presence": "Busy", "message": "Helping a colleague", "by": "agent"}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("simulator control answered {}", response.status());
    }

    println!("5. The meeting ends: restore the previous presence only if nobody changed it");
    let restore = PresenceChange::to(&before.definition_id, Some(before.message.clone()));
    match client
        .compare_and_set_presence(&user_id, &after.tag(), &restore, deadline())
        .await?
    {
        CasOutcome::Refused { current } => {
            println!(
                "   -> refused: the presence is now {}, set by someone else; left as it is",
                describe(&current)
            );
        }
        CasOutcome::Applied { .. } => bail!("restored over the agent's own change"),
    }
    println!("Walkthrough complete.");
    Ok(())
}
