//! `moto_rotation::start_rotation` leaves exactly the state Secrets Manager's RotateSecret leaves
//! before it calls the rotation function, on a first rotation and on a later one (where an
//! AWSPREVIOUS exists and must stay where it is).

use aws_sdk_secretsmanager::Client;
use dbcreds_testenv::{Moto, moto_rotation};
use std::collections::BTreeMap;

fn stages(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs.iter().map(|(version, stages)| (version.to_string(), stages.iter().map(|s| s.to_string()).collect())).collect()
}

async fn sorted_stages(sm: &Client, arn: &str) -> BTreeMap<String, Vec<String>> {
    let mut all = moto_rotation::version_stages(sm, arn).await.expect("DescribeSecret");
    all.values_mut().for_each(|s| s.sort());
    all
}

/// What finishSecret does: the value, then AWSCURRENT to the token, AWSPENDING off it.
async fn finish(sm: &Client, arn: &str, token: &str, current: &str, value: &str) {
    sm.put_secret_value().secret_id(arn).client_request_token(token).secret_string(value).version_stages("AWSPENDING").send().await.expect("PutSecretValue");
    sm.update_secret_version_stage().secret_id(arn).version_stage("AWSCURRENT").move_to_version_id(token).remove_from_version_id(current).send().await.expect("move AWSCURRENT");
    sm.update_secret_version_stage().secret_id(arn).version_stage("AWSPENDING").remove_from_version_id(token).send().await.expect("remove AWSPENDING");
}

#[tokio::test]
async fn a_started_rotation_is_the_services_state_first_and_later() {
    let moto = Moto::start().await;
    let sm = Client::new(&moto.sdk_config().await);
    let arn = sm.create_secret().name("app/rotated").secret_string(r#"{"username":"app","password":"first-value"}"#).send().await.expect("CreateSecret").arn.expect("an ARN");
    let first = moto_rotation::version_stages(&sm, &arn).await.unwrap().into_keys().next().expect("one version");

    let token = moto_rotation::new_token();
    moto_rotation::start_rotation(&sm, &arn, &token).await.expect("the first rotation starts");
    assert_eq!(sorted_stages(&sm, &arn).await, stages(&[(&first, &["AWSCURRENT"]), (&token, &["AWSPENDING"])]));
    let described = sm.describe_secret().secret_id(&arn).send().await.unwrap();
    assert_eq!(described.rotation_enabled, Some(true));
    assert!(sm.get_secret_value().secret_id(&arn).version_id(&token).send().await.is_err(), "no value yet");

    finish(&sm, &arn, &token, &first, r#"{"username":"app","password":"second-value"}"#).await;
    let later = moto_rotation::new_token();
    assert_ne!(later, token);
    moto_rotation::start_rotation(&sm, &arn, &later).await.expect("the second rotation starts");
    assert_eq!(sorted_stages(&sm, &arn).await, stages(&[(&first, &["AWSPREVIOUS"]), (&token, &["AWSCURRENT"]), (&later, &["AWSPENDING"])]));
    let current = sm.get_secret_value().secret_id(&arn).version_stage("AWSCURRENT").send().await.unwrap();
    assert_eq!(current.version_id.as_deref(), Some(token.as_str()), "AWSCURRENT stays on the finished version");
}

#[tokio::test]
async fn a_missing_secret_is_an_error_naming_it() {
    let moto = Moto::start().await;
    let sm = Client::new(&moto.sdk_config().await);
    let problem = moto_rotation::start_rotation(&sm, "no/such/secret", &moto_rotation::new_token()).await.expect_err("nothing to rotate");
    assert!(problem.contains("no/such/secret"), "{problem}");
}
