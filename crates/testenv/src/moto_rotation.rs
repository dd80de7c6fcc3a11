//! Secrets Manager's RotateSecret on moto, as the service does it before it calls a rotation
//! function: rotation turned on, a new version with the token and AWSPENDING and no value, the
//! other stages untouched. The tests and the demo then invoke the four steps with that token,
//! the way Secrets Manager drives them.
//!
//! moto cannot do this in one call: its RotateSecret without a RotationLambdaARN creates the
//! valueless version but labels it AWSCURRENT (and the old current AWSPREVIOUS). So
//! [`start_rotation`] lets it, moves the stages back with UpdateSecretVersionStage (AWS's own
//! API), then checks the result is exactly the service's state, so a change in moto fails
//! loudly instead of quietly changing what the callers exercise. Nothing here relies on moto's
//! PutSecretValue overwrite quirk.
//!
//! One moto difference remains, which no API call can undo: GetSecretValue *without* a
//! VersionId or VersionStage reads the version moto's RotateSecret made (UpdateSecretVersionStage
//! does not move moto's default version), so while a rotation is under way it answers
//! ResourceNotFound where AWS answers AWSCURRENT; once finishSecret has made the new version
//! AWSCURRENT the two agree again. Ask for `VersionStage("AWSCURRENT")` by name.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::types::RotationRulesType;
use std::collections::BTreeMap;

/// A `ClientRequestToken` as Secrets Manager makes them: a random (version 4) UUID.
pub fn new_token() -> String {
    crate::random::uuid_v4()
}

/// Every version id of the secret with its stages, as DescribeSecret reports them.
pub async fn version_stages(sm: &Client, secret_id: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let out = sm.describe_secret().secret_id(secret_id).send().await.map_err(|err| format!("DescribeSecret {secret_id}: {}", DisplayErrorContext(&err)))?;
    Ok(out.version_ids_to_stages.unwrap_or_default().into_iter().collect())
}

/// Starts a rotation of `secret_id` with `token` as RotateSecret does before it invokes the
/// function, and checks the outcome. The error says what moto did differently.
pub async fn start_rotation(sm: &Client, secret_id: &str, token: &str) -> Result<(), String> {
    let before = version_stages(sm, secret_id).await?;
    let holder = |stage: &str| before.iter().find(|(_, stages)| stages.iter().any(|s| s == stage)).map(|(id, _)| id.clone());
    let current = holder("AWSCURRENT").ok_or_else(|| format!("{secret_id} has no AWSCURRENT version to rotate from"))?;
    let previous = holder("AWSPREVIOUS");
    sm.rotate_secret()
        .secret_id(secret_id)
        .client_request_token(token)
        .rotation_rules(RotationRulesType::builder().automatically_after_days(30).build())
        .send()
        .await
        .map_err(|err| format!("RotateSecret {secret_id}: {}", DisplayErrorContext(&err)))?;

    let move_stage = |stage: &'static str, to: Option<&str>, from: Option<&str>, why: &'static str| {
        let request = sm.update_secret_version_stage().secret_id(secret_id).version_stage(stage).set_move_to_version_id(to.map(str::to_owned)).set_remove_from_version_id(from.map(str::to_owned));
        async move { request.send().await.map(|_| ()).map_err(|err| format!("UpdateSecretVersionStage to {why}: {}", DisplayErrorContext(&err))) }
    };
    move_stage("AWSCURRENT", Some(&current), Some(token), "move AWSCURRENT back").await?;
    move_stage("AWSPREVIOUS", None, Some(token), "clear AWSPREVIOUS from the new version").await?;
    if let Some(previous) = &previous {
        move_stage("AWSPREVIOUS", Some(previous), None, "restore AWSPREVIOUS").await?;
    }
    move_stage("AWSPENDING", Some(token), None, "label the new version AWSPENDING").await?;

    let mut expected = before;
    for stages in expected.values_mut() {
        stages.retain(|s| s != "AWSPENDING");
        stages.sort();
    }
    expected.insert(token.to_owned(), vec!["AWSPENDING".to_owned()]);
    let mut after = version_stages(sm, secret_id).await?;
    for stages in after.values_mut() {
        stages.sort();
    }
    if after != expected {
        return Err(format!("the emulated RotateSecret left another state than the service's: expected {expected:?}, got {after:?}"));
    }
    let described = sm.describe_secret().secret_id(secret_id).send().await.map_err(|err| format!("DescribeSecret {secret_id}: {}", DisplayErrorContext(&err)))?;
    if described.rotation_enabled != Some(true) {
        return Err(format!("RotateSecret must turn rotation on for {secret_id}"));
    }
    if sm.get_secret_value().secret_id(secret_id).version_id(token).send().await.is_ok() {
        return Err(format!("the new version {token} of {secret_id} must have no value yet"));
    }
    Ok(())
}
