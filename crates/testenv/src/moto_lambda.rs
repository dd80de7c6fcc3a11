//! A rotation function registered in moto's Lambda, so that RotateSecret with a
//! `RotationLambdaARN`, and CancelRotateSecret (which needs one), behave on moto as on AWS.
//!
//! moto then uses its Docker-less Lambda backend, which "invokes" a function by doing nothing
//! and succeeding. So RotateSecret leaves what the service leaves when the function did nothing:
//! rotation on, the function's ARN recorded, and a new version with AWSPENDING and no value; a
//! test plays the function by running the four steps with that version's id.

use crate::Moto;
use crate::moto_iam::iam;

/// Registers a function named `name` and returns its ARN. Switches the whole moto server to
/// its Docker-less Lambda backend.
pub async fn register_rotation_function(moto: &Moto, name: &str) -> String {
    let config = crate::moto_iam::post(moto, "/moto-api/config", &[("Content-Type", "application/json")], r#"{"lambda": {"use_docker": false}}"#).await;
    assert!(config.contains("\"use_docker\": false"), "moto did not switch to its Docker-less Lambda backend: {config}");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = iam(moto, &[("Action", "CreateRole"), ("RoleName", name), ("AssumeRolePolicyDocument", trust)]).await;
    let role_arn = crate::moto_iam::xml_value(&role, "Arn");
    let body = serde_json::json!({
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Role": role_arn,
        "Handler": "bootstrap",
        // An empty zip archive: moto stores the code and never runs it.
        "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
    });
    let authorization = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0";
    let answer = crate::moto_iam::post(moto, "/2015-03-31/functions", &[("Content-Type", "application/json"), ("Authorization", authorization)], &body.to_string()).await;
    let json = answer.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    let created: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|err| panic!("moto's CreateFunction answer is not JSON ({err}): {answer}"));
    created["FunctionArn"].as_str().unwrap_or_else(|| panic!("moto's CreateFunction answer has no FunctionArn: {answer}")).to_owned()
}
