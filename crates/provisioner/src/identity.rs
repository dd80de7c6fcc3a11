//! Which database a resource lives in, and the physical id that names it.
//!
//! The identity is (engine family, host, port, database name). Changing any of them is a
//! replacement: the users are provisioned in the new database under a new physical id, and
//! CloudFormation then deletes the old one. Everything else (users, privileges, the master secret,
//! rotation strategy) is reconciled in place under the same id.
//!
//! The physical id is deterministic, so a duplicate delivery answers the same id, and a rollback
//! that returns to an earlier identity returns that identity's original id:
//!
//! ```text
//! dbcreds:mysql://db.example.com:3306/appdb#3f2a9c1d            a resource that was created
//! dbcreds:mysql://db.example.com:3306/appdb#3f2a9c1d;incomplete a Create that failed after it
//!                                                               started changing the database
//! DatabaseUsers-not-created-<hash>                              a Create that changed nothing
//! ```
//! The hash is of the stack id and logical id, so two resources on one database have different ids.

use dbcreds_core::EngineFamily;
use dbcreds_custom_resource::Request;
use dbcreds_custom_resource::response::fnv1a;

const PREFIX: &str = "dbcreds:";
const INCOMPLETE: &str = ";incomplete";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseIdentity {
    pub family: EngineFamily,
    /// Lower case: DNS names compare without case.
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl DatabaseIdentity {
    pub fn new(family: EngineFamily, host: &str, port: u16, database: &str) -> Self {
        Self { family, host: host.to_ascii_lowercase(), port, database: database.to_owned() }
    }

    /// Same server: the users (which are per server, not per database) are shared.
    pub fn same_server(&self, other: &DatabaseIdentity) -> bool {
        self.family == other.family && self.host == other.host && self.port == other.port
    }

    pub fn physical_id(&self, request: &Request) -> String {
        let hash = fnv1a(format!("{}\n{}", request.stack_id, request.logical_resource_id).as_bytes()) as u32;
        format!("{PREFIX}{}://{}:{}/{}#{hash:08x}", self.family, self.host, self.port, self.database)
    }

    pub fn incomplete_physical_id(&self, request: &Request) -> String {
        format!("{}{INCOMPLETE}", self.physical_id(request))
    }
}

impl std::fmt::Display for DatabaseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} database {} on {}:{}", self.family, self.database, self.host, self.port)
    }
}

/// A physical id this provisioner issued, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhysicalId {
    pub identity: DatabaseIdentity,
    /// The Create under this id failed part-way: no other resource can share its users.
    pub incomplete: bool,
}

impl PhysicalId {
    /// `None` for ids this provisioner did not issue (or issued in the not-created form).
    pub fn parse(id: &str) -> Option<PhysicalId> {
        let rest = id.strip_prefix(PREFIX)?;
        let (rest, incomplete) = match rest.strip_suffix(INCOMPLETE) {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let (rest, _hash) = rest.rsplit_once('#')?;
        let (family, rest) = rest.split_once("://")?;
        let family = match family {
            "mysql" => EngineFamily::MySql,
            "postgres" => EngineFamily::Postgres,
            _ => return None,
        };
        let (endpoint, database) = rest.rsplit_once('/')?;
        let (host, port) = endpoint.rsplit_once(':')?;
        let port = port.parse().ok()?;
        if host.is_empty() || database.is_empty() {
            return None;
        }
        Some(PhysicalId { identity: DatabaseIdentity::new(family, host, port, database), incomplete })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(logical: &str) -> Request {
        Request::from_event(&json!({
            "RequestType": "Create", "ResponseURL": "https://example.com/r", "StackId": "arn:stack/s/1", "RequestId": "r",
            "LogicalResourceId": logical, "ResourceProperties": {}
        }))
        .unwrap()
    }

    #[test]
    fn ids_round_trip_and_are_deterministic() {
        let identity = DatabaseIdentity::new(EngineFamily::Postgres, "DB.Example.com", 5432, "appdb");
        let id = identity.physical_id(&request("DatabaseUsers"));
        assert!(id.starts_with("dbcreds:postgres://db.example.com:5432/appdb#"), "{id}");
        assert_eq!(id, identity.physical_id(&request("DatabaseUsers")));
        assert_ne!(id, identity.physical_id(&request("OtherUsers")));
        assert_eq!(PhysicalId::parse(&id), Some(PhysicalId { identity: identity.clone(), incomplete: false }));
        let incomplete = identity.incomplete_physical_id(&request("DatabaseUsers"));
        assert_eq!(PhysicalId::parse(&incomplete), Some(PhysicalId { identity, incomplete: true }));
    }

    #[test]
    fn ipv6_hosts_and_foreign_ids() {
        let identity = DatabaseIdentity::new(EngineFamily::MySql, "::1", 3306, "d");
        assert_eq!(PhysicalId::parse(&identity.physical_id(&request("R"))).unwrap().identity, identity);
        for foreign in ["", "DatabaseUsers-not-created-0123456789abcdef", "dbcreds:oracle://h:1/d#0", "dbcreds:mysql://h/d#0", "dbcreds:mysql://h:x/d#0"] {
            assert_eq!(PhysicalId::parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn identity_decides_replacement_and_server_sharing() {
        let a = DatabaseIdentity::new(EngineFamily::MySql, "h", 3306, "a");
        let b = DatabaseIdentity::new(EngineFamily::MySql, "H", 3306, "b");
        assert_ne!(a, b);
        assert!(a.same_server(&b));
        assert!(!a.same_server(&DatabaseIdentity::new(EngineFamily::MySql, "h", 3307, "a")));
        assert_eq!(a, DatabaseIdentity::new(EngineFamily::MySql, "H", 3306, "a"));
    }
}
