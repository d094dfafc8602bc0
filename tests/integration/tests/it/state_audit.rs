//! `DynamoStore` as `AuditLog` against moto: concurrent appends keep one chain, tampering done
//! directly through the SDK is caught and located, and the two query paths.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use presence_autopilot::aws::dynamo::{DynamoStore, TTL_ATTRIBUTE};
use presence_autopilot::clock::{ManualClock, SystemClock};
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{AuditLog, AuditQueries};
use presence_autopilot::state::{AuditEntry, ChainBreak, DecisionKind, TriggerId};

use crate::support::moto;

fn user(n: u32) -> UserId {
    UserId::parse(&format!("00000000-0000-4000-8000-{n:012}")).expect("valid id")
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_770_000_000 + seconds, 0).expect("valid time")
}

fn entry(user: &UserId, n: usize) -> AuditEntry {
    let mut entry = AuditEntry::new(user.clone(), DecisionKind::Skipped);
    entry.reason = Some(format!("reason {n}"));
    entry.details = serde_json::json!({ "n": n });
    entry
}

fn key(user: &UserId, seq: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("USER#{user}"))),
        (
            "sk".to_owned(),
            AttributeValue::S(format!("AUDIT#{seq:012}")),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_appends_make_one_unforked_chain() {
    let (client, table) = moto::new_table().await;
    let store = Arc::new(DynamoStore::new(client, table, Arc::new(SystemClock)));
    let who = user(1);

    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let (store, who) = (Arc::clone(&store), who.clone());
            tokio::spawn(async move { store.append(entry(&who, n)).await })
        })
        .collect();
    let records: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("append"))
        .collect();

    let seqs: BTreeSet<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=50).collect::<BTreeSet<u64>>(),
        "each append got its own seq"
    );
    let report = store
        .verify_chain(&who)
        .await
        .expect("read")
        .expect("chain intact");
    assert_eq!(report.records, 50);
    assert_eq!(report.head.map(|h| h.seq), Some(50));
    let stored = store
        .by_user(&who, at(-1_000_000_000), at(1_000_000_000))
        .await
        .expect("query");
    let ns: BTreeSet<u64> = stored
        .iter()
        .filter_map(|r| r.details["n"].as_u64())
        .collect();
    assert_eq!(ns.len(), 50, "no append was lost");
}

/// A user with a five-record chain, in a fresh table.
async fn chain_of_five() -> (aws_sdk_dynamodb::Client, String, DynamoStore, UserId) {
    let (client, table) = moto::new_table().await;
    let store = DynamoStore::new(client.clone(), table.clone(), Arc::new(SystemClock));
    let who = user(2);
    for n in 0..5 {
        store.append(entry(&who, n)).await.expect("append");
    }
    assert!(
        store.verify_chain(&who).await.expect("read").is_ok(),
        "intact before tampering"
    );
    (client, table, store, who)
}

#[tokio::test]
async fn editing_a_field_is_named_as_a_hash_mismatch_of_that_record() {
    let (client, table, store, who) = chain_of_five().await;
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(key(&who, 3)))
        .update_expression("SET reason = :forged")
        .expression_attribute_values(":forged", AttributeValue::S("forged".to_owned()))
        .send()
        .await
        .expect("edit through the SDK");

    let verdict = store.verify_chain(&who).await.expect("read");

    assert_eq!(verdict, Err(ChainBreak::HashMismatch { seq: 3 }));
}

#[tokio::test]
async fn deleting_a_record_is_named_as_a_gap() {
    let (client, table, store, who) = chain_of_five().await;
    client
        .delete_item()
        .table_name(&table)
        .set_key(Some(key(&who, 2)))
        .send()
        .await
        .expect("delete through the SDK");

    let verdict = store.verify_chain(&who).await.expect("read");

    assert_eq!(
        verdict,
        Err(ChainBreak::SeqGap {
            expected: 2,
            found: 3
        })
    );
}

#[tokio::test]
async fn deleting_the_last_record_is_caught_by_the_head() {
    let (client, table, store, who) = chain_of_five().await;
    client
        .delete_item()
        .table_name(&table)
        .set_key(Some(key(&who, 5)))
        .send()
        .await
        .expect("delete through the SDK");

    let verdict = store.verify_chain(&who).await.expect("read");

    assert_eq!(
        verdict,
        Err(ChainBreak::HeadMismatch {
            head_seq: 5,
            last_seq: 4
        })
    );
}

#[tokio::test]
async fn swapping_two_records_is_named_at_the_first_swapped_position() {
    let (client, table, store, who) = chain_of_five().await;
    let get = |seq| {
        let (client, table, who) = (client.clone(), table.clone(), who.clone());
        async move {
            let out = client
                .get_item()
                .table_name(table)
                .set_key(Some(key(&who, seq)))
                .send();
            out.await.expect("get").item.expect("exists")
        }
    };
    let (mut two, mut three) = (get(2).await, get(3).await);
    // Swap everything but the keys, as someone reordering history in the table would.
    two.extend(key(&who, 3));
    three.extend(key(&who, 2));
    for item in [two, three] {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send()
            .await
            .expect("put");
    }

    let verdict = store.verify_chain(&who).await.expect("read");

    assert_eq!(
        verdict,
        Err(ChainBreak::SeqGap {
            expected: 2,
            found: 3
        })
    );
}

#[tokio::test]
async fn swapping_contents_but_keeping_seq_numbers_is_a_hash_mismatch() {
    let (client, table, store, who) = chain_of_five().await;
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(key(&who, 4)))
        .update_expression("SET reason = :r, details = :d")
        .expression_attribute_values(":r", AttributeValue::S("reason 1".to_owned()))
        .expression_attribute_values(":d", AttributeValue::S(r#"{"n":1}"#.to_owned()))
        .send()
        .await
        .expect("edit");

    let verdict = store.verify_chain(&who).await.expect("read");

    assert_eq!(verdict, Err(ChainBreak::HashMismatch { seq: 4 }));
}

#[tokio::test]
async fn records_are_found_by_user_time_range_and_by_trigger_and_carry_a_ttl() {
    let (client, table) = moto::new_table().await;
    let clock = ManualClock::starting_at(at(0));
    let store = DynamoStore::new(client.clone(), table.clone(), Arc::new(clock.clone()))
        .with_audit_retention(Duration::from_secs(10 * 86_400));
    let trigger = TriggerId::parse("evt-42").expect("id");
    for (who, minute) in [(user(3), 0), (user(3), 1), (user(4), 2), (user(3), 3)] {
        clock.advance(Duration::from_secs(60));
        let mut e = entry(&who, minute);
        if minute != 1 {
            e.trigger_id = Some(trigger.clone());
        }
        store.append(e).await.expect("append");
    }

    // Records at +60 s, +120 s and +240 s for user 3; [+120 s, +240 s) holds only the second.
    let window = store
        .by_user(&user(3), at(120), at(240))
        .await
        .expect("query");
    let for_trigger = store.by_trigger(&trigger).await.expect("query");

    assert_eq!(
        window.iter().map(|r| r.at).collect::<Vec<_>>(),
        vec![at(120)]
    );
    assert_eq!(
        for_trigger
            .iter()
            .map(|r| (r.user_id.clone(), r.at))
            .collect::<Vec<_>>(),
        vec![(user(3), at(60)), (user(4), at(180)), (user(3), at(240))]
    );
    let item = client
        .get_item()
        .table_name(&table)
        .set_key(Some(key(&user(3), 1)))
        .send()
        .await
        .expect("get")
        .item
        .expect("exists");
    let expected_ttl = (at(60) + chrono::Duration::days(10))
        .timestamp()
        .to_string();
    assert_eq!(
        item.get(TTL_ATTRIBUTE),
        Some(&AttributeValue::N(expected_ttl))
    );
}

#[tokio::test]
async fn a_record_edited_into_an_unreadable_shape_is_named() {
    let (client, table, store, who) = chain_of_five().await;
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(key(&who, 4)))
        .update_expression("SET kind = :bogus")
        .expression_attribute_values(":bogus", AttributeValue::S("promoted".to_owned()))
        .send()
        .await
        .expect("edit");

    let verdict = store.verify_chain(&who).await.expect("read");

    assert!(
        matches!(&verdict, Err(ChainBreak::Unreadable { seq: 4, field, .. }) if field == "kind"),
        "{verdict:?}"
    );
}
