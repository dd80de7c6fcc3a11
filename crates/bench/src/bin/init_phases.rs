//! Where a function's init goes: the steps of the rotator's cold start (crates/rotator/src/main.rs)
//! timed one by one in a fresh process, printed as one JSON line. `dbcreds-bench` shows the
//! whole init of the real binaries; this splits it, to know what to optimise. Run it with the
//! function's environment, one process per sample (a second run in one process would find the
//! allocator, the page cache and AWS-LC warm):
//!
//! ```text
//! for i in $(seq 20); do AWS_REGION=us-east-1 target/bench-harness/init_phases; done
//! ```

use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let started = Instant::now();
    let mut phases: Vec<(&str, f64)> = Vec::new();
    let mut mark = Instant::now();
    let mut lap = |name: &'static str, phases: &mut Vec<(&str, f64)>| {
        phases.push((name, mark.elapsed().as_secs_f64() * 1000.0));
        mark = Instant::now();
    };
    dbcreds_runtime::init_logging();
    lap("json logging", &mut phases);
    let config = dbcreds_rotation::RotationConfig::from_lookup(dbcreds_runtime::env_lookup).expect("the configuration");
    lap("configuration", &mut phases);
    if std::env::var_os("INIT_PHASES_SPLIT").is_some() {
        let variant = std::env::var("INIT_PHASES_SDK").unwrap_or_default();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if variant.contains("client") {
            use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
            let trust = TrustStore::empty().with_native_roots(false);
            let context = TlsContext::builder().with_trust_store(trust).build().unwrap();
            loader = loader.http_client(aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc)).tls_context(context).build_https());
        }
        if variant.contains("env") {
            loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
        }
        let config = loader.load().await;
        lap("  split: aws_config load", &mut phases);
        let _sm = aws_sdk_secretsmanager::Client::new(&config);
        lap("  split: Secrets Manager client", &mut phases);
        let _rds = aws_sdk_rds::Client::new(&config);
        lap("  split: RDS client", &mut phases);
    }
    let clients = dbcreds_aws::AwsClients::from_env().await.expect("the AWS clients");
    lap("AWS clients", &mut phases);
    let store = dbcreds_aws::SecretsManagerStore::new(&clients);
    let rds = dbcreds_aws::RdsEndpoints::new(&clients);
    lap("store and RDS", &mut phases);
    if std::env::var_os("INIT_PHASES_SPLIT").is_some() {
        let native = rustls_native_certs::load_native_certs();
        lap("  split: system roots read and decoded", &mut phases);
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(native.certs);
        lap("  split: system roots parsed as trust anchors", &mut phases);
    }
    let trust = dbcreds_db::TrustStore::load(dbcreds_runtime::env_lookup).expect("the trust store");
    lap("trust store", &mut phases);
    let databases = dbcreds_rotation::LiveDatabases::new(std::sync::Arc::new(trust));
    lap("databases", &mut phases);
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).expect("random bytes");
    lap("first random bytes (AWS-LC)", &mut phases);
    let total = started.elapsed().as_secs_f64() * 1000.0;
    let fields: Vec<String> = phases.iter().map(|(name, ms)| format!("\"{name}\": {ms:.3}")).collect();
    println!("{{{}, \"total\": {total:.3}}}", fields.join(", "));
    drop((config, store, rds, databases));
}
