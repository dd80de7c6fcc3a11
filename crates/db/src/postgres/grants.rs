//! `apply_privileges`: give a user exactly a privilege set on one database.
//!
//! Scope: the database itself (`CONNECT`, `TEMPORARY`, `CREATE`), its schema `public`, the
//! tables, views, sequences (and, when asked for `EXECUTE`, routines) in that schema, and the
//! default privileges on objects created there later. Privileges in other schemas are the
//! application's business and are left alone, as are grants to `PUBLIC` (PostgreSQL gives
//! `PUBLIC` `CONNECT` and `TEMPORARY` on databases and `EXECUTE` on functions by default).
//!
//! Future objects: `ALTER DEFAULT PRIVILEGES` applies per creating role, so defaults are set for
//! every role that can create objects in the schema: the session user, the database owner, and
//! roles holding an explicit `CREATE` on `public` (an owner-preset user). Superuser creators are
//! skipped unless the session is a superuser. So give the owner-preset user its privileges first;
//! calling again is cheap and picks up new creators.
//!
//! Authority: a GRANT on an object, and `ALTER DEFAULT PRIVILEGES FOR ROLE r`, need the owner's
//! (or `r`'s) privileges. A superuser has them; an RDS master (CREATEROLE, not superuser) borrows
//! them by a membership granted at the start of the transaction and revoked before it commits
//! ([`super::sql::borrow_privileges`]), so tables an owner-preset user created can be granted on.
//!
//! The plan is computed by pure functions from what the catalog says ([`CurrentAcls`]) and what
//! the spec asks ([`PrivilegeSet`]): grant what is missing, revoke what is extra, one statement per
//! object kind and privilege set, so the cost follows what changed.

use super::detect::Capabilities;
use super::sql::{self, Ident, ObjectKind, Statement};
use crate::privileges::{GrantChange, PrivilegePreset, PrivilegeSpec};
use dbcreds_core::InputError;
use std::collections::{BTreeMap, BTreeSet};

pub type Privileges = BTreeSet<&'static str>;

/// The privilege names the adapter ever writes; server-reported names are mapped onto these.
const KNOWN: &[&str] =
    &["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN", "EXECUTE", "USAGE", "CREATE", "CONNECT", "TEMPORARY"];

/// Maps a privilege name from `aclexplode` to ours (`None` for one we do not manage).
pub fn known_privilege(name: &str) -> Option<&'static str> {
    KNOWN.iter().copied().find(|k| *k == name)
}

/// What a spec means on each kind of object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivilegeSet {
    pub database: Privileges,
    pub schema: Privileges,
    pub table: Privileges,
    pub sequence: Privileges,
    pub routine: Privileges,
}

impl PrivilegeSet {
    pub fn for_kind(&self, kind: ObjectKind) -> &Privileges {
        match kind {
            ObjectKind::Database => &self.database,
            ObjectKind::Schema => &self.schema,
            ObjectKind::Table => &self.table,
            ObjectKind::Sequence => &self.sequence,
            ObjectKind::Routine => &self.routine,
        }
    }
}

fn set(names: &[&'static str]) -> Privileges {
    names.iter().copied().collect()
}

/// Translates a spec into privileges per object kind.
///
/// Presets: `readonly` = `CONNECT`; `USAGE` on the schema; `SELECT` on tables and sequences.
/// `readwrite` adds `TEMPORARY`, `INSERT, UPDATE, DELETE` on tables and `USAGE` on sequences
/// (what `nextval` for a serial column needs). `owner` = `CONNECT, TEMPORARY, CREATE` on the
/// database, `USAGE, CREATE` on the schema and every table and sequence privilege (`ALL`), with
/// no GRANT OPTION, no superuser and no CREATEROLE: it can create and own its own objects and
/// use everyone else's in the schema.
///
/// Lists: `CONNECT`, `TEMPORARY` apply to the database; `CREATE` to the database and the schema;
/// `USAGE` to the schema and sequences; `SELECT` and `UPDATE` to tables and sequences; `INSERT,
/// DELETE, TRUNCATE, REFERENCES, TRIGGER` to tables; `EXECUTE` to routines. Any table, sequence
/// or routine privilege implies `USAGE` on the schema, without which it is unusable.
pub fn desired_privileges(spec: &PrivilegeSpec, caps: &Capabilities) -> Result<PrivilegeSet, InputError> {
    let mut wanted = PrivilegeSet::default();
    match spec {
        PrivilegeSpec::Preset(PrivilegePreset::ReadOnly) => {
            wanted.database = set(&["CONNECT"]);
            wanted.table = set(&["SELECT"]);
            wanted.sequence = set(&["SELECT"]);
        }
        PrivilegeSpec::Preset(PrivilegePreset::ReadWrite) => {
            wanted.database = set(&["CONNECT", "TEMPORARY"]);
            wanted.table = set(&["SELECT", "INSERT", "UPDATE", "DELETE"]);
            wanted.sequence = set(&["USAGE", "SELECT"]);
        }
        PrivilegeSpec::Preset(PrivilegePreset::Owner) => {
            wanted.database = set(&["CONNECT", "TEMPORARY", "CREATE"]);
            wanted.schema = set(&["CREATE"]);
            wanted.table = set(&["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]);
            if caps.maintain_privilege {
                wanted.table.insert("MAINTAIN");
            }
            wanted.sequence = set(&["USAGE", "SELECT", "UPDATE"]);
        }
        PrivilegeSpec::List(names) => {
            for (i, name) in names.iter().enumerate() {
                match name.as_str() {
                    "CONNECT" => drop(wanted.database.insert("CONNECT")),
                    "TEMPORARY" => drop(wanted.database.insert("TEMPORARY")),
                    "CREATE" => {
                        wanted.database.insert("CREATE");
                        wanted.schema.insert("CREATE");
                    }
                    "USAGE" => {
                        wanted.schema.insert("USAGE");
                        wanted.sequence.insert("USAGE");
                    }
                    "SELECT" | "UPDATE" => {
                        let name = known_privilege(name).expect("listed above");
                        wanted.table.insert(name);
                        wanted.sequence.insert(name);
                    }
                    "INSERT" | "DELETE" | "TRUNCATE" | "REFERENCES" | "TRIGGER" => drop(wanted.table.insert(known_privilege(name).expect("listed above"))),
                    "EXECUTE" => drop(wanted.routine.insert("EXECUTE")),
                    other => {
                        return Err(InputError::invalid(
                            format!("Privileges[{i}]"),
                            format!("{} is not a PostgreSQL database privilege", dbcreds_core::sanitize::for_log(other)),
                            "use SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER, CREATE, CONNECT, TEMPORARY, EXECUTE or USAGE",
                        ));
                    }
                }
            }
        }
    }
    if !(wanted.table.is_empty() && wanted.sequence.is_empty() && wanted.routine.is_empty()) {
        wanted.schema.insert("USAGE");
    }
    Ok(wanted)
}

/// One object's privileges for the user, as the catalog says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectAcl {
    pub kind: ObjectKind,
    /// The SQL reference, quoted (`"public"."t"`, `"public"."f"(integer)`).
    pub reference: String,
    pub privileges: Privileges,
    /// The owning role (whose authority a GRANT or REVOKE on it needs).
    pub owner: Option<String>,
}

/// A default-privilege entry (`pg_default_acl`) in the schema naming the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultAcl {
    pub creator: String,
    pub kind: ObjectKind,
    pub privileges: Privileges,
    /// Whether the session user may change it: it is a member of the creator, or may borrow
    /// the creator's privileges (the creator is not a superuser).
    pub manageable: bool,
}

/// Everything the catalog says about the user's privileges in scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentAcls {
    /// `None` when the user owns the database (an owner's rights are implicit).
    pub database: Option<Privileges>,
    /// `None` when the user owns the schema.
    pub schema: Option<Privileges>,
    /// Tables, views, sequences and routines in the schema that the user does not own.
    pub objects: Vec<ObjectAcl>,
    pub defaults: Vec<DefaultAcl>,
}

/// The statements to run and the changes they make.
#[derive(Debug, Default)]
pub struct Plan {
    pub statements: Vec<Statement>,
    pub changes: Vec<GrantChange>,
    /// Default-privilege entries the session may not change, for a warning.
    pub unmanageable: Vec<String>,
    /// Owners of the objects and creators of the default privileges the statements touch: the
    /// session needs their privileges (a non-superuser master borrows them).
    pub touched_roles: BTreeSet<String>,
}

/// Computes grants and revokes that turn `current` into `wanted`.
pub fn plan(user: &Ident, database: &Ident, schema: &Ident, wanted: &PrivilegeSet, creators: &[Ident], current: &CurrentAcls) -> Plan {
    let mut out = Plan::default();
    let mut grants: BTreeMap<(ObjectKind, Vec<&'static str>), Vec<String>> = BTreeMap::new();
    let mut revokes: BTreeMap<(ObjectKind, Vec<&'static str>), Vec<String>> = BTreeMap::new();
    let mut touched = BTreeSet::new();
    let mut diff = |kind: ObjectKind, reference: String, owner: Option<&String>, have: &Privileges, want: &Privileges| {
        let missing: Vec<&'static str> = want.difference(have).copied().collect();
        let extra: Vec<&'static str> = have.difference(want).copied().collect();
        if let Some(owner) = owner.filter(|_| !(missing.is_empty() && extra.is_empty())) {
            touched.insert(owner.clone());
        }
        if !missing.is_empty() {
            grants.entry((kind, missing)).or_default().push(reference.clone());
        }
        if !extra.is_empty() {
            revokes.entry((kind, extra)).or_default().push(reference);
        }
    };
    if let Some(have) = &current.database {
        diff(ObjectKind::Database, database.quoted(), None, have, &wanted.database);
    }
    if let Some(have) = &current.schema {
        diff(ObjectKind::Schema, schema.quoted(), None, have, &wanted.schema);
    }
    for object in &current.objects {
        diff(object.kind, object.reference.clone(), object.owner.as_ref(), &object.privileges, wanted.for_kind(object.kind));
    }
    out.touched_roles = touched;
    // Revokes first, so a failure half-way never leaves more than was asked for.
    for ((kind, privileges), objects) in &revokes {
        out.statements.push(sql::object_privileges(false, privileges, *kind, objects, user));
        for object in objects {
            out.changes.push(GrantChange::Revoked(format!("{} ON {} {object}", privileges.join(", "), kind.keyword())));
        }
    }
    for ((kind, privileges), objects) in &grants {
        out.statements.push(sql::object_privileges(true, privileges, *kind, objects, user));
        for object in objects {
            out.changes.push(GrantChange::Granted(format!("{} ON {} {object}", privileges.join(", "), kind.keyword())));
        }
    }
    // Default privileges: wanted for each creator, and nothing from anyone else.
    let empty = Privileges::new();
    let mut seen: BTreeSet<(String, ObjectKind)> = BTreeSet::new();
    for entry in &current.defaults {
        seen.insert((entry.creator.clone(), entry.kind));
        let want = if creators.iter().any(|c| c.name() == entry.creator) { wanted.for_kind(entry.kind) } else { &empty };
        if &entry.privileges == want {
            continue;
        }
        if !entry.manageable {
            out.unmanageable.push(format!("default privileges of {} on {}", sql::quote_ident(&entry.creator), entry.kind.default_keyword().unwrap_or("?")));
            continue;
        }
        default_diff(&mut out, &Ident::from_catalog(&entry.creator), schema, entry.kind, &entry.privileges, want, user);
    }
    for creator in creators {
        for kind in [ObjectKind::Table, ObjectKind::Sequence, ObjectKind::Routine] {
            if !seen.contains(&(creator.name().to_owned(), kind)) {
                default_diff(&mut out, creator, schema, kind, &empty, wanted.for_kind(kind), user);
            }
        }
    }
    out
}

fn default_diff(out: &mut Plan, creator: &Ident, schema: &Ident, kind: ObjectKind, have: &Privileges, want: &Privileges, user: &Ident) {
    let extra: Vec<&'static str> = have.difference(want).copied().collect();
    let missing: Vec<&'static str> = want.difference(have).copied().collect();
    if !(extra.is_empty() && missing.is_empty()) {
        out.touched_roles.insert(creator.name().to_owned());
    }
    let plural = kind.default_keyword().unwrap_or("?");
    if !extra.is_empty() {
        out.statements.push(sql::default_privileges(false, creator, schema, &extra, kind, user));
        out.changes.push(GrantChange::Revoked(format!("{} ON FUTURE {plural} OF {creator} IN SCHEMA {schema}", extra.join(", "))));
    }
    if !missing.is_empty() {
        out.statements.push(sql::default_privileges(true, creator, schema, &missing, kind, user));
        out.changes.push(GrantChange::Granted(format!("{} ON FUTURE {plural} OF {creator} IN SCHEMA {schema}", missing.join(", "))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Capabilities {
        Capabilities::for_version_num(150_004)
    }

    fn ids() -> (Ident, Ident, Ident) {
        (Ident::user("u", "reader").unwrap(), Ident::database("d", "app").unwrap(), Ident::from_catalog("public"))
    }

    fn table(name: &str, privileges: &[&'static str]) -> ObjectAcl {
        ObjectAcl { kind: ObjectKind::Table, reference: sql::qualified("public", name), privileges: set(privileges), owner: Some("owner_of_".to_string() + name) }
    }

    fn render(plan: &Plan) -> Vec<String> {
        plan.statements.iter().map(Statement::redacted).collect()
    }

    #[test]
    fn presets_expand_to_least_privilege() {
        let ro = desired_privileges(&PrivilegeSpec::Preset(PrivilegePreset::ReadOnly), &caps()).unwrap();
        assert_eq!(ro.database, set(&["CONNECT"]));
        assert_eq!(ro.schema, set(&["USAGE"]));
        assert_eq!(ro.table, set(&["SELECT"]));
        let owner = desired_privileges(&PrivilegeSpec::Preset(PrivilegePreset::Owner), &caps()).unwrap();
        assert!(owner.schema.contains("CREATE") && owner.database.contains("CREATE"));
        assert!(!owner.table.contains("MAINTAIN"));
        let owner17 = desired_privileges(&PrivilegeSpec::Preset(PrivilegePreset::Owner), &Capabilities::for_version_num(170_000)).unwrap();
        assert!(owner17.table.contains("MAINTAIN"));
    }

    #[test]
    fn lists_map_each_name_to_its_objects() {
        let spec = PrivilegeSpec::List(vec!["SELECT".into(), "EXECUTE".into(), "CONNECT".into()]);
        let wanted = desired_privileges(&spec, &caps()).unwrap();
        assert_eq!(wanted.database, set(&["CONNECT"]));
        assert_eq!(wanted.schema, set(&["USAGE"]));
        assert_eq!(wanted.table, set(&["SELECT"]));
        assert_eq!(wanted.sequence, set(&["SELECT"]));
        assert_eq!(wanted.routine, set(&["EXECUTE"]));
        let connect_only = desired_privileges(&PrivilegeSpec::List(vec!["CONNECT".into()]), &caps()).unwrap();
        assert!(connect_only.schema.is_empty());
        assert!(desired_privileges(&PrivilegeSpec::List(vec!["SUPER".into()]), &caps()).is_err());
    }

    #[test]
    fn grants_what_is_missing_and_revokes_what_is_extra_grouped() {
        let (user, db, public) = ids();
        let wanted = desired_privileges(&PrivilegeSpec::Preset(PrivilegePreset::ReadOnly), &caps()).unwrap();
        let current = CurrentAcls {
            database: Some(set(&["CONNECT", "CREATE"])),
            schema: Some(set(&[])),
            objects: vec![table("a", &[]), table("b", &[]), table("c", &["SELECT", "INSERT"]), table("d", &["SELECT"])],
            defaults: vec![],
        };
        let plan = plan(&user, &db, &public, &wanted, &[], &current);
        assert_eq!(
            render(&plan),
            [
                "REVOKE CREATE ON DATABASE \"app\" FROM \"reader\"",
                "REVOKE INSERT ON TABLE \"public\".\"c\" FROM \"reader\"",
                "GRANT USAGE ON SCHEMA \"public\" TO \"reader\"",
                "GRANT SELECT ON TABLE \"public\".\"a\", \"public\".\"b\" TO \"reader\"",
            ]
        );
        assert!(plan.changes.contains(&GrantChange::Revoked("INSERT ON TABLE \"public\".\"c\"".into())));
        // Only the owners of tables that change need lending their privileges.
        assert_eq!(plan.touched_roles.iter().map(String::as_str).collect::<Vec<_>>(), ["owner_of_a", "owner_of_b", "owner_of_c"]);
        assert!(plan.changes.contains(&GrantChange::Granted("SELECT ON TABLE \"public\".\"b\"".into())));
    }

    #[test]
    fn nothing_to_do_when_already_right() {
        let (user, db, public) = ids();
        let wanted = desired_privileges(&PrivilegeSpec::Preset(PrivilegePreset::ReadOnly), &caps()).unwrap();
        let master = Ident::from_catalog("master");
        let defaults = [ObjectKind::Table, ObjectKind::Sequence]
            .into_iter()
            .map(|kind| DefaultAcl { creator: "master".into(), kind, privileges: set(&["SELECT"]), manageable: true })
            .collect();
        let current = CurrentAcls { database: Some(set(&["CONNECT"])), schema: Some(set(&["USAGE"])), objects: vec![table("a", &["SELECT"])], defaults };
        let plan = plan(&user, &db, &public, &wanted, &[master], &current);
        assert!(plan.statements.is_empty(), "{:?}", render(&plan));
        assert!(plan.changes.is_empty() && plan.touched_roles.is_empty());
    }

    #[test]
    fn owned_objects_are_left_alone() {
        let (user, db, public) = ids();
        let wanted = desired_privileges(&PrivilegeSpec::Preset(PrivilegePreset::ReadOnly), &caps()).unwrap();
        let current = CurrentAcls { database: None, schema: None, objects: vec![], defaults: vec![] };
        assert!(plan(&user, &db, &public, &wanted, &[], &current).statements.is_empty());
    }

    #[test]
    fn default_privileges_per_creator() {
        let (user, db, public) = ids();
        let wanted = desired_privileges(&PrivilegeSpec::Preset(PrivilegePreset::ReadWrite), &caps()).unwrap();
        let current = CurrentAcls {
            database: None,
            schema: None,
            objects: vec![],
            defaults: vec![
                DefaultAcl { creator: "master".into(), kind: ObjectKind::Table, privileges: set(&["SELECT", "TRUNCATE"]), manageable: true },
                DefaultAcl { creator: "gone".into(), kind: ObjectKind::Table, privileges: set(&["SELECT"]), manageable: true },
                DefaultAcl { creator: "foreign".into(), kind: ObjectKind::Table, privileges: set(&["SELECT"]), manageable: false },
            ],
        };
        let plan = plan(&user, &db, &public, &wanted, &[Ident::from_catalog("master")], &current);
        assert_eq!(
            render(&plan),
            [
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"master\" IN SCHEMA \"public\" REVOKE TRUNCATE ON TABLES FROM \"reader\"",
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"master\" IN SCHEMA \"public\" GRANT DELETE, INSERT, UPDATE ON TABLES TO \"reader\"",
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"gone\" IN SCHEMA \"public\" REVOKE SELECT ON TABLES FROM \"reader\"",
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"master\" IN SCHEMA \"public\" GRANT SELECT, USAGE ON SEQUENCES TO \"reader\"",
            ]
        );
        assert_eq!(plan.unmanageable.len(), 1);
        assert_eq!(plan.touched_roles.iter().map(String::as_str).collect::<Vec<_>>(), ["gone", "master"]);
    }
}
