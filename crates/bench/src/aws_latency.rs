//! What one Secrets Manager call costs here, before any of our code runs: moto (a Python server)
//! answering the four APIs a rotation uses, called straight and through the call counter the
//! other scenarios put in front of it. This is the floor under every step: a rotation makes 8 or
//! 9 of these calls, and their time is moto's, not the function's.

use crate::fixture::{Aws, unique};
use crate::report::{Report, Table};
use crate::stats::Samples;
use aws_sdk_secretsmanager::Client;
use dbcreds_testenv::moto_rotation::new_token;
use serde_json::{Value, json};
use std::future::Future;
use std::time::Instant;

async fn time<F, Fut>(samples: &mut Samples, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    call().await;
    samples.push_ms(started.elapsed());
}

/// `calls` of each API on one client, timed one by one. `holder` is the index in `versions` of
/// the version that has the BENCH stage, moved back and forth.
async fn measure(client: &Client, arn: &str, versions: &[String; 2], holder: &mut usize, calls: usize) -> Vec<(&'static str, Samples)> {
    let (mut describe, mut get, mut put, mut update) = (Samples::default(), Samples::default(), Samples::default(), Samples::default());
    // One call first, so that every timed call finds the HTTP connection open, as a warm
    // function's calls do.
    client.describe_secret().secret_id(arn).send().await.expect("DescribeSecret on moto");
    for _ in 0..calls {
        time(&mut describe, || async {
            client.describe_secret().secret_id(arn).send().await.expect("DescribeSecret on moto");
        })
        .await;
        time(&mut get, || async {
            client.get_secret_value().secret_id(arn).version_id(&versions[0]).send().await.expect("GetSecretValue on moto");
        })
        .await;
        time(&mut put, || async {
            client.put_secret_value().secret_id(arn).client_request_token(new_token()).secret_string("{\"bench\":true}").version_stages("BENCH_PUT").send().await.expect("PutSecretValue on moto");
        })
        .await;
        // A custom stage moved back and forth between two versions.
        let (from, to) = (&versions[*holder], &versions[1 - *holder]);
        time(&mut update, || async {
            client.update_secret_version_stage().secret_id(arn).version_stage("BENCH").move_to_version_id(to).remove_from_version_id(from).send().await.expect("UpdateSecretVersionStage on moto");
        })
        .await;
        *holder = 1 - *holder;
    }
    vec![("DescribeSecret", describe), ("GetSecretValue", get), ("PutSecretValue", put), ("UpdateSecretVersionStage", update)]
}

pub async fn aws_latency(runs: usize, report: &mut Report) {
    let calls = (runs * 5).clamp(10, 200);
    eprintln!("dbcreds-bench: Secrets Manager call latency ({calls} calls per API)");
    let aws = Aws::start().await;
    let arn = aws.create_secret(&json!({"username": "bench", "password": unique("pw")})).await;
    let first = aws.sm.describe_secret().secret_id(&arn).send().await.expect("DescribeSecret on moto");
    let current = first.version_ids_to_stages.unwrap_or_default().into_keys().next().expect("a version");
    let second = new_token();
    aws.sm.put_secret_value().secret_id(&arn).client_request_token(&second).secret_string("{}").version_stages("BENCH").send().await.expect("PutSecretValue on moto");
    let versions = [second.clone(), current];
    let counted = Client::from_conf(aws_sdk_secretsmanager::config::Builder::from(&aws.moto.sdk_config().await).endpoint_url(aws.counter.endpoint()).build());

    let mut holder = 0;
    let direct = measure(&aws.sm, &arn, &versions, &mut holder, calls).await;
    let through = measure(&counted, &arn, &versions, &mut holder, calls).await;

    let mut table = Table::new(&["API", "moto, direct ms (median / p95)", "through the call counter ms", "counter's own hop ms (medians)"]);
    let mut figures = serde_json::Map::new();
    for ((api, straight), (_, counted)) in direct.iter().zip(&through) {
        table.row(vec![(*api).into(), straight.median_p95(), counted.median_p95(), format!("{:.2}", counted.median() - straight.median())]);
        figures.insert((*api).into(), json!({"direct_ms": straight.to_json(), "through_counter_ms": counted.to_json()}));
    }
    let notes = vec![format!(
        "{calls} calls of each API from the benchmark's own SDK client (connection kept open), straight to moto and through the AWS call counter the rotation scenarios use. Every Secrets Manager call a function makes in the other sections costs about this much of its time; none of it is the function's code."
    )];
    report.section("secrets_manager_latency", "Secrets Manager call latency (moto)", &notes, &table, Value::Object(figures));
}
