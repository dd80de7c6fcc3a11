//! The sample events in `events/provisioner/` are real requests: each parses as CloudFormation's
//! envelope and its properties as this resource's, and the physical ids they carry are the ones
//! the provisioner issues for those properties.

use dbcreds_core::EngineFamily;
use dbcreds_custom_resource::{Request, RequestType};
use provisioner::identity::{DatabaseIdentity, PhysicalId};
use provisioner::spec::{ResourceSpec, UserSource};
use std::path::PathBuf;

fn event(name: &str) -> Request {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/provisioner").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{name} is not JSON: {err}"));
    Request::from_event(&value).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn spec(name: &str, request: &Request) -> ResourceSpec {
    ResourceSpec::parse(&request.resource_properties).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn identity(spec: &ResourceSpec, family: EngineFamily) -> DatabaseIdentity {
    DatabaseIdentity::new(family, spec.host.as_deref().expect("the samples give Host"), spec.port.expect("and Port"), &spec.database_name)
}

#[test]
fn every_sample_event_is_a_valid_request() {
    let mut seen = 0;
    for entry in std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/provisioner")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let request = event(&name);
        spec(&name, &request);
        if let Some(old) = &request.old_resource_properties {
            ResourceSpec::parse(old).unwrap_or_else(|err| panic!("{name} OldResourceProperties: {err}"));
        }
        seen += 1;
    }
    assert_eq!(seen, 5, "create-mysql, create-postgres, update, update-replacement, delete");
}

#[test]
fn the_samples_tell_the_lifecycle() {
    let create = event("create-mysql.json");
    assert_eq!(create.request_type, RequestType::Create);
    let created = identity(&spec("create-mysql.json", &create), EngineFamily::MySql);

    let update = event("update.json");
    assert_eq!(update.request_type, RequestType::Update);
    let id = update.physical_resource_id.clone().unwrap();
    assert_eq!(id, created.physical_id(&create), "the id the Create answered");
    assert_eq!(PhysicalId::parse(&id).unwrap().identity, identity(&spec("update.json", &update), EngineFamily::MySql), "same database: in place");
    let users = spec("update.json", &update).users;
    assert_eq!(users.len(), 3, "adds DBUserC");

    let replacement = event("update-replacement.json");
    let new = identity(&spec("update-replacement.json", &replacement), EngineFamily::MySql);
    assert_ne!(PhysicalId::parse(replacement.physical_resource_id.as_deref().unwrap()).unwrap().identity, new, "a new database: a replacement");

    let delete = event("delete.json");
    assert_eq!(delete.request_type, RequestType::Delete);
    assert_eq!(delete.physical_resource_id.as_deref(), Some(id.as_str()));

    let postgres = spec("create-postgres.json", &event("create-postgres.json"));
    assert!(postgres.users.iter().any(|u| matches!(&u.source, UserSource::Iam(name) if name == "app_iam")));
}
