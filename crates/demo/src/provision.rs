//! Part 2: what a CloudFormation stack does with `Custom::DatabaseUsers`. The stack's secrets are
//! created (the master secret in RDS's JSON; DBUserA and DBUserB as `GenerateSecretString` makes
//! them), the real `provisioner` gets a Create request through the Lambda Runtime API emulator,
//! and its answer is caught by a loopback stand-in for the presigned S3 ResponseURL. Then each
//! user logs in with its completed secret.

use crate::login::proves_login;
use crate::narrator::Narrator;
use crate::secrets::{describe, short_arn};
use crate::world::{Database, World};
use dbcreds_core::{PasswordPolicy, SecretDocument, generate_password};
use dbcreds_custom_resource::recorder::ResponseRecorder;
use serde_json::{Value, json};
use std::time::Duration;

/// The template's function timeout.
const TIMEOUT: Duration = Duration::from_secs(120);
pub const DATABASE: &str = "appdb";
const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/dbcreds-demo/6c3b1a20-0000-11ef-8000-0a1b2c3d4e5f";
const SERVICE_TOKEN: &str = "arn:aws:lambda:us-east-1:123456789012:function:provisioner";

/// The secrets the stack holds for one database, once provisioned.
pub struct Provisioned {
    /// DBUserA: readwrite, single-user rotation.
    pub user_a_arn: String,
    /// DBUserB: readonly, alternating-users rotation (its secret gets `masterarn`).
    pub user_b_arn: String,
}

/// Runs part 2 for one database. `Err` is a problem that leaves nothing to rotate.
pub async fn provision(world: &World, database: &Database, recorder: &ResponseRecorder, out: &mut Narrator) -> Result<Provisioned, String> {
    let column = database.column();
    out.heading(format!("{} on {}:{}", database.name(), database.host(), database.port()));

    let master = database.master_document()?;
    let master_arn = world.secrets.create(&format!("demo/{}/master", database.engine()), &master).await?;
    out.detail(format!("master secret   {}", short_arn(&master_arn)));
    out.detail(format!("                {}", describe(&master)));
    let mut user_arns = Vec::new();
    for user in ["DBUserA", "DBUserB"] {
        // What CloudFormation's GenerateSecretString makes: a user name and a generated password.
        let password = generate_password(&PasswordPolicy::default()).map_err(|err| err.to_string())?;
        let document = SecretDocument::new(user, password);
        let arn = world.secrets.create(&format!("demo/{}/{user}", database.engine()), &document).await?;
        out.detail(format!("{user} secret  {}  {}", short_arn(&arn), describe(&document)));
        user_arns.push(arn);
    }
    let (user_a_arn, user_b_arn) = (user_arns[0].clone(), user_arns[1].clone());

    let users = json!([
        {"SecretArn": user_a_arn, "Privileges": "readwrite", "Authentication": "password", "RotationStrategy": "single-user"},
        {"SecretArn": user_b_arn, "Privileges": "readonly", "Authentication": "password", "RotationStrategy": "alternating-users"},
    ]);
    let response_name = format!("demo-{}-create", database.engine());
    let event = json!({
        "RequestType": "Create",
        "ServiceToken": SERVICE_TOKEN,
        "ResponseURL": recorder.url(&response_name),
        "StackId": STACK_ID,
        "RequestId": format!("demo-{}-request-1", database.engine()),
        "LogicalResourceId": "DatabaseUsers",
        "ResourceType": "Custom::DatabaseUsers",
        "ResourceProperties": {"ServiceToken": SERVICE_TOKEN, "MasterSecretArn": master_arn, "DatabaseName": DATABASE, "Users": users},
    });
    out.detail(format!("Create request  DatabaseName={DATABASE}, MasterSecretArn=<master secret>, Engine/Host/Port from the master secret,"));
    out.detail("                DBUserA readwrite single-user, DBUserB readonly alternating-users");

    let mut function = world.function("provisioner", database, &[]).await;
    let invocation = function.invoke(event, TIMEOUT).await;
    let timings = &invocation.timings;
    out.detail(format!(
        "provisioner     answered in {} ms{}",
        timings.duration.map_or("?".into(), |d| d.as_millis().to_string()),
        timings.init.map_or(String::new(), |init| format!(" (cold start: init {} ms)", init.as_millis()))
    ));
    let puts = recorder.requests_for(&response_name);
    for put in &puts {
        world.logs.remember_output("provisioner", &String::from_utf8_lossy(&put.body));
    }
    let response = check_response(&puts);
    if let Ok(body) = &response {
        let put = &puts[0];
        out.detail(format!("the ResponseURL got one {} ({} bytes, Content-Type: \"{}\"):", put.method, put.body.len(), put.header("content-type").unwrap_or("<none>")));
        out.block(6, &serde_json::to_string_pretty(body).unwrap_or_default());
    }
    let created = out.proof(column, "provisioner Create: SUCCESS, one PUT to the ResponseURL", response.map(|body| format!("PhysicalResourceId {}", body["PhysicalResourceId"].as_str().unwrap_or_default())));
    if !created {
        out.detail(format!("the invocation: {:?}", invocation.outcome));
        out.detail(format!("the function's logs: {}", world.logs.path("provisioner").display()));
        return Err("the Create failed".into());
    }

    for (user, arn) in [("DBUserA", &user_a_arn), ("DBUserB", &user_b_arn)] {
        let (_, document) = world.secrets.current(arn).await?;
        out.detail(format!("{user} secret now  {}", describe(&document)));
        let proof = proves_login(&document, &world.trust).await;
        out.proof(column, &format!("{user} logs in with its completed secret, verified TLS"), proof);
    }
    Ok(Provisioned { user_a_arn, user_b_arn })
}

/// Exactly one PUT whose body is CloudFormation's response with Status SUCCESS.
fn check_response(puts: &[dbcreds_custom_resource::recorder::RecordedRequest]) -> Result<Value, String> {
    let [put] = puts else { return Err(format!("{} PUTs reached the ResponseURL, expected exactly one", puts.len())) };
    if put.method != "PUT" {
        return Err(format!("the response came as {}, not PUT", put.method));
    }
    let body: Value = serde_json::from_slice(&put.body).map_err(|err| format!("the response body is not JSON: {err}"))?;
    for key in ["Status", "PhysicalResourceId", "StackId", "RequestId", "LogicalResourceId"] {
        if body.get(key).is_none() {
            return Err(format!("the response lacks {key}: {body}"));
        }
    }
    if body["Status"] != "SUCCESS" {
        return Err(format!("Status {}: {}", body["Status"], body["Reason"].as_str().unwrap_or_default()));
    }
    Ok(body)
}
