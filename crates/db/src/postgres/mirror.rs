//! `mirror_user`: the alternating-users clone, and who owns what.
//!
//! # The problem
//! Alternating-users rotation switches the application between `u` and `u_clone`. AWS's function
//! grants the clone membership in `u` once, when it creates it, copies no role attribute, and
//! objects the clone creates belong to the clone, so the original user cannot use them after the
//! next switch (rotation.md, item 7).
//!
//! # The ownership model
//! - **The base user owns everything.** The base is the name without `_clone`.
//! - **The clone acts as the base.** The clone is a member of the base (INHERIT, SET) and has
//!   `ALTER ROLE u_clone SET role = u`, so every session of the clone runs as `current_user = u`:
//!   tables, sequences and functions it creates are owned by `u`, and the privileges it uses are
//!   `u`'s. Whichever user the secret currently names, both reach every object, on every
//!   rotation, and nothing needs re-granting. (If the base itself has a `role` setting, say
//!   `role = app_owner`, the clone gets the same one instead, so both act as `app_owner`.)
//! - **No cycle.** Membership runs one way only, clone -> base. When the base is the target, it
//!   gets the clone's memberships except the base itself, and never a membership in the clone.
//! - **Everything else follows the source, both ways.** On every call the target's role
//!   attributes (SUPERUSER, CREATEDB, CREATEROLE, INHERIT, REPLICATION, BYPASSRLS, CONNECTION
//!   LIMIT, VALID UNTIL; not LOGIN, which the target always has, nor PASSWORD, which is the new
//!   one), its per-role settings (`ALTER ROLE ... SET`) and its memberships (with their ADMIN,
//!   and on PostgreSQL 16 INHERIT and SET options) are made equal to the source's, adding what
//!   is missing and revoking what the source no longer has. Memberships are also copied directly,
//!   so the clone keeps the base's privileges after `SET ROLE NONE`.
//! - **Stray objects come home.** Objects the clone still owns (made before this model, or after
//!   `SET ROLE NONE`) are reassigned to the base in the connected database, on every call in
//!   either direction, so the base can use them too. Clone-owned objects in other databases are
//!   reported in a warning.
//!
//! `mirror_user(u, u_clone, pw)` and `mirror_user(u_clone, u, pw)` both work; the pair must be
//! named `x` and `x_clone`. The work is a diff: one catalog read per role, then only the
//! statements that change something, sent as one transaction.
//!
//! The session user needs the privileges of the clone and the base to reassign. A superuser
//! has them; an RDS master (CREATEROLE, not superuser) is granted membership for the duration of
//! the transaction and the grant is revoked before it commits.

use super::detect::Capabilities;
use super::scram::ScramVerifier;
use super::sql::{self, Ident, MembershipOptions, RoleAttribute, Statement};
use crate::privileges::GrantChange;
use dbcreds_core::InputError;
use std::collections::BTreeMap;

/// The suffix of the alternating user, as AWS's rotation functions name it.
pub const CLONE_SUFFIX: &str = "_clone";

/// Which of the pair is which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub base: Ident,
    pub clone: Ident,
    pub target_is_clone: bool,
}

impl Pair {
    pub fn source(&self) -> &Ident {
        if self.target_is_clone { &self.base } else { &self.clone }
    }

    pub fn target(&self) -> &Ident {
        if self.target_is_clone { &self.clone } else { &self.base }
    }
}

/// Validates both names and works out which is the base.
pub fn pair(source: &str, target: &str) -> Result<Pair, InputError> {
    let source_id = Ident::user("source", source)?;
    let target_id = Ident::user("target", target)?;
    if target.strip_suffix(CLONE_SUFFIX) == Some(source) {
        Ok(Pair { base: source_id, clone: target_id, target_is_clone: true })
    } else if source.strip_suffix(CLONE_SUFFIX) == Some(target) {
        Ok(Pair { base: target_id, clone: source_id, target_is_clone: false })
    } else {
        Err(InputError::invalid(
            "target",
            format!("{} and {} are not an alternating pair", dbcreds_core::sanitize::for_log(source), dbcreds_core::sanitize::for_log(target)),
            format!("name the clone after the base user with the {CLONE_SUFFIX} suffix (u and u{CLONE_SUFFIX})"),
        ))
    }
}

/// Role attributes as `pg_roles` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub inherit: bool,
    pub login: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connection_limit: i32,
    /// `None`: never expires (NULL or infinity).
    pub valid_until: Option<String>,
}

/// One grant of a membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipGrant {
    pub grantor: Option<String>,
    pub options: MembershipOptions,
}

/// A role as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleState {
    pub attributes: Attributes,
    /// `rolconfig`: setting name -> value as the server stored it.
    pub config: BTreeMap<String, String>,
    /// Role name -> its grants (several on PostgreSQL 16 when several grantors granted it).
    pub memberships: BTreeMap<String, Vec<MembershipGrant>>,
}

/// The options a member effectively has through all grants of one membership.
pub fn effective(grants: &[MembershipGrant]) -> MembershipOptions {
    MembershipOptions {
        admin: grants.iter().any(|g| g.options.admin),
        inherit: grants.iter().any(|g| g.options.inherit),
        set: grants.iter().any(|g| g.options.set),
    }
}

/// What `read_grants` shows for a role: attributes, settings and memberships, sorted.
pub fn describe(state: &RoleState, caps: &Capabilities) -> Vec<String> {
    let mut out: Vec<String> = attribute_list(&state.attributes).iter().map(RoleAttribute::sql).collect();
    for (name, value) in &state.config {
        out.push(format!("SET {name}={value}"));
    }
    for (role, grants) in &state.memberships {
        out.push(format!("MEMBER OF {}{}", sql::quote_ident(role), effective(grants).describe(caps)));
    }
    out.sort();
    out
}

fn attribute_list(a: &Attributes) -> Vec<RoleAttribute> {
    vec![
        RoleAttribute::Superuser(a.superuser),
        RoleAttribute::CreateDb(a.createdb),
        RoleAttribute::CreateRole(a.createrole),
        RoleAttribute::Inherit(a.inherit),
        RoleAttribute::Login(a.login),
        RoleAttribute::Replication(a.replication),
        RoleAttribute::BypassRls(a.bypassrls),
        RoleAttribute::ConnectionLimit(a.connection_limit),
        RoleAttribute::ValidUntil(a.valid_until.clone()),
    ]
}

/// What the target should look like, from the source and the model.
pub fn desired_target(pair: &Pair, source: &RoleState) -> RoleState {
    let mut attributes = source.attributes.clone();
    attributes.login = true;
    let mut config: BTreeMap<String, String> = source.config.iter().filter(|(k, _)| k.as_str() != "role").map(|(k, v)| (k.clone(), v.clone())).collect();
    let source_role = source.config.get("role");
    let mut memberships: BTreeMap<String, Vec<MembershipGrant>> = source
        .memberships
        .iter()
        .filter(|(role, _)| role.as_str() != pair.target().name() && role.as_str() != pair.clone.name())
        .map(|(role, grants)| (role.clone(), vec![MembershipGrant { grantor: None, options: effective(grants) }]))
        .collect();
    if pair.target_is_clone {
        // The clone acts as the base (or as whatever role the base acts as).
        config.insert("role".into(), source_role.cloned().unwrap_or_else(|| pair.base.name().to_owned()));
        memberships.insert(pair.base.name().to_owned(), vec![MembershipGrant { grantor: None, options: MembershipOptions::PLAIN }]);
    } else if let Some(role) = source_role.filter(|r| r.as_str() != pair.base.name()) {
        config.insert("role".into(), role.clone());
    }
    RoleState { attributes, config, memberships }
}

/// The statements that make the target match, and the changes they make.
#[derive(Debug, Default)]
pub struct MirrorPlan {
    pub statements: Vec<Statement>,
    pub changes: Vec<GrantChange>,
}

/// Plans the mirror. `target` is `None` when the target role does not exist yet.
/// `reassign` is set when the clone owns objects in the connected database; `borrow` lists the
/// roles whose privileges the session user must borrow for the reassignment.
pub fn plan(
    pair: &Pair,
    source: &RoleState,
    target: Option<&RoleState>,
    verifier: &ScramVerifier,
    caps: &Capabilities,
    reassign: Option<(&Ident, &[Ident])>,
) -> Result<MirrorPlan, InputError> {
    let want = desired_target(pair, source);
    let name = pair.target();
    let mut out = MirrorPlan::default();
    let empty = RoleState { attributes: want.attributes.clone(), config: BTreeMap::new(), memberships: BTreeMap::new() };
    let have = match target {
        None => {
            out.statements.push(sql::create_role_with(name, &attribute_list(&want.attributes), verifier));
            out.changes.push(GrantChange::Altered(format!("created role {name}")));
            &empty
        }
        Some(have) => {
            let changed: Vec<RoleAttribute> = attribute_list(&want.attributes)
                .into_iter()
                .zip(attribute_list(&have.attributes))
                .filter(|(w, h)| w != h)
                .map(|(w, _)| w)
                .collect();
            for attribute in &changed {
                out.changes.push(GrantChange::Altered(attribute.sql()));
            }
            out.statements.push(sql::alter_role(name, &changed, Some(verifier)));
            have
        }
    };
    out.changes.push(GrantChange::Altered("PASSWORD".into()));

    // Memberships: revoke what the source does not have, grant what is missing, fix options.
    for (role, grants) in &have.memberships {
        let role_id = Ident::from_catalog(role);
        match want.memberships.get(role) {
            None => {
                if caps.membership_options {
                    for grant in grants {
                        out.statements.push(sql::revoke_membership(&role_id, name, grant.grantor.as_ref().map(|g| Ident::from_catalog(g)).as_ref(), caps));
                    }
                } else {
                    out.statements.push(sql::revoke_membership(&role_id, name, None, caps));
                }
                out.changes.push(GrantChange::Revoked(format!("MEMBER OF {role_id}")));
            }
            Some(wanted) => {
                let wanted = effective(wanted);
                if caps.membership_options {
                    // Each grantor's grant must end up with the wanted options.
                    for grant in grants {
                        if grant.options != wanted {
                            let grantor = grant.grantor.as_ref().map(|g| Ident::from_catalog(g));
                            out.statements.extend(sql::change_membership_options(&role_id, name, grantor.as_ref(), grant.options, wanted, caps));
                            out.changes.push(GrantChange::Altered(format!("MEMBER OF {role_id}{}", wanted.describe(caps))));
                        }
                    }
                } else if effective(grants).admin != wanted.admin {
                    out.statements.extend(sql::change_membership_options(&role_id, name, None, effective(grants), wanted, caps));
                    out.changes.push(GrantChange::Altered(format!("MEMBER OF {role_id}{}", wanted.describe(caps))));
                }
            }
        }
    }
    for (role, grants) in &want.memberships {
        if !have.memberships.contains_key(role) {
            let role_id = Ident::from_catalog(role);
            let options = effective(grants);
            out.statements.push(sql::grant_membership(&role_id, name, options, caps));
            out.changes.push(GrantChange::Granted(format!("MEMBER OF {role_id}{}", options.describe(caps))));
        }
    }

    // Settings.
    for key in have.config.keys() {
        if !want.config.contains_key(key) {
            out.statements.push(sql::reset_role_setting(name, key)?);
            out.changes.push(GrantChange::Altered(format!("RESET {key}")));
        }
    }
    for (key, value) in &want.config {
        if have.config.get(key) != Some(value) {
            out.statements.push(sql::set_role_setting(name, key, value)?);
            out.changes.push(GrantChange::Altered(format!("SET {key}={value}")));
        }
    }

    if let Some((session_user, borrow)) = reassign {
        let (lend, give_back) = sql::borrow_privileges(session_user, borrow, caps);
        out.statements.extend(lend);
        out.statements.push(sql::reassign_owned(&pair.clone, &pair.base));
        out.changes.push(GrantChange::Altered(format!("REASSIGN OWNED BY {} TO {}", pair.clone, pair.base)));
        out.statements.extend(give_back);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pg16: bool) -> Capabilities {
        Capabilities::for_version_num(if pg16 { 160_000 } else { 150_000 })
    }

    fn attrs() -> Attributes {
        Attributes { superuser: false, createdb: false, createrole: false, inherit: true, login: true, replication: false, bypassrls: false, connection_limit: -1, valid_until: None }
    }

    fn role(memberships: &[(&str, bool)], config: &[(&str, &str)]) -> RoleState {
        RoleState {
            attributes: attrs(),
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            memberships: memberships
                .iter()
                .map(|(r, admin)| (r.to_string(), vec![MembershipGrant { grantor: Some("master".into()), options: MembershipOptions { admin: *admin, ..MembershipOptions::PLAIN } }]))
                .collect(),
        }
    }

    fn verifier() -> ScramVerifier {
        ScramVerifier::with_salt(b"pw", b"0123456789abcdef", 4096).unwrap()
    }

    fn render(plan: &MirrorPlan) -> Vec<String> {
        plan.statements.iter().map(Statement::redacted).collect()
    }

    #[test]
    fn pairs_are_recognised_in_both_directions() {
        let forward = pair("app", "app_clone").unwrap();
        assert!(forward.target_is_clone);
        assert_eq!((forward.base.name(), forward.clone.name()), ("app", "app_clone"));
        let back = pair("app_clone", "app").unwrap();
        assert!(!back.target_is_clone);
        assert_eq!(back.source().name(), "app_clone");
        assert_eq!(back.target().name(), "app");
        assert_eq!(pair("app", "other").unwrap_err().field, "target");
        assert_eq!(pair("a'; DROP USER root; --", "x").unwrap_err().field, "source");
        assert!(pair(&"a".repeat(60), &format!("{}_clone", "a".repeat(60))).is_err());
    }

    #[test]
    fn a_new_clone_is_created_acting_as_the_base() {
        let p = pair("app", "app_clone").unwrap();
        let source = role(&[("readers", false), ("writers", true)], &[("search_path", "\"$user\", public")]);
        let plan = plan(&p, &source, None, &verifier(), &caps(false), None).unwrap();
        assert_eq!(
            render(&plan),
            [
                "CREATE ROLE \"app_clone\" NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1 VALID UNTIL 'infinity' PASSWORD '<redacted>'",
                "GRANT \"app\" TO \"app_clone\"",
                "GRANT \"readers\" TO \"app_clone\"",
                "GRANT \"writers\" TO \"app_clone\" WITH ADMIN OPTION",
                "ALTER ROLE \"app_clone\" SET \"role\" = 'app'",
                "ALTER ROLE \"app_clone\" SET \"search_path\" = '$user', 'public'",
            ]
        );
    }

    #[test]
    fn an_up_to_date_clone_only_gets_its_password() {
        let p = pair("app", "app_clone").unwrap();
        let source = role(&[("readers", false)], &[]);
        let target = role(&[("readers", false), ("app", false)], &[("role", "app")]);
        let plan = plan(&p, &source, Some(&target), &verifier(), &caps(false), None).unwrap();
        assert_eq!(render(&plan), ["ALTER ROLE \"app_clone\" PASSWORD '<redacted>'"]);
        assert_eq!(plan.changes, [GrantChange::Altered("PASSWORD".into())]);
    }

    #[test]
    fn revoked_memberships_attributes_and_settings_follow_the_source() {
        let p = pair("app", "app_clone").unwrap();
        let mut source = role(&[("readers", true)], &[("statement_timeout", "5s")]);
        source.attributes.createdb = true;
        source.attributes.connection_limit = 10;
        let target = role(&[("readers", false), ("old", false), ("app", false)], &[("role", "app"), ("work_mem", "64MB")]);
        let plan = plan(&p, &source, Some(&target), &verifier(), &caps(false), None).unwrap();
        assert_eq!(
            render(&plan),
            [
                "ALTER ROLE \"app_clone\" CREATEDB CONNECTION LIMIT 10 PASSWORD '<redacted>'",
                "REVOKE \"old\" FROM \"app_clone\"",
                "GRANT \"readers\" TO \"app_clone\" WITH ADMIN OPTION",
                "ALTER ROLE \"app_clone\" RESET \"work_mem\"",
                "ALTER ROLE \"app_clone\" SET \"statement_timeout\" = '5s'",
            ]
        );
        assert!(plan.changes.contains(&GrantChange::Revoked("MEMBER OF \"old\"".into())));
    }

    #[test]
    fn mirroring_back_to_the_base_never_makes_a_cycle() {
        let p = pair("app_clone", "app").unwrap();
        // The clone is a member of the base and acts as it.
        let source = role(&[("app", false), ("readers", false), ("new_role", false)], &[("role", "app")]);
        // The base somehow became a member of the clone: that must go.
        let target = role(&[("readers", false), ("app_clone", false)], &[]);
        let plan = plan(&p, &source, Some(&target), &verifier(), &caps(false), None).unwrap();
        let sql = render(&plan);
        assert_eq!(
            sql,
            ["ALTER ROLE \"app\" PASSWORD '<redacted>'", "REVOKE \"app_clone\" FROM \"app\"", "GRANT \"new_role\" TO \"app\""]
        );
        assert!(!sql.iter().any(|s| s.contains("SET \"role\"")));
    }

    #[test]
    fn a_base_acting_as_another_role_is_followed_by_the_clone() {
        let p = pair("app", "app_clone").unwrap();
        let source = role(&[("app_owner", false)], &[("role", "app_owner")]);
        let want = desired_target(&p, &source);
        assert_eq!(want.config.get("role").map(String::as_str), Some("app_owner"));
        // ... and back: the base keeps acting as app_owner.
        let back = pair("app_clone", "app").unwrap();
        assert_eq!(desired_target(&back, &want).config.get("role").map(String::as_str), Some("app_owner"));
    }

    #[test]
    fn pg16_revokes_per_grantor_and_mirrors_inherit_and_set() {
        let p = pair("app", "app_clone").unwrap();
        let mut source = role(&[("readers", false)], &[]);
        source.memberships.get_mut("readers").unwrap()[0].options.inherit = false;
        let mut target = role(&[("readers", false), ("app", false), ("old", false)], &[("role", "app")]);
        target.memberships.get_mut("old").unwrap().push(MembershipGrant { grantor: Some("other_admin".into()), options: MembershipOptions::PLAIN });
        let plan = plan(&p, &source, Some(&target), &verifier(), &caps(true), None).unwrap();
        assert_eq!(
            render(&plan),
            [
                "ALTER ROLE \"app_clone\" PASSWORD '<redacted>'",
                "REVOKE \"old\" FROM \"app_clone\" GRANTED BY \"master\"",
                "REVOKE \"old\" FROM \"app_clone\" GRANTED BY \"other_admin\"",
                "REVOKE INHERIT OPTION FOR \"readers\" FROM \"app_clone\" GRANTED BY \"master\"",
            ]
        );
    }

    #[test]
    fn stray_clone_objects_are_reassigned_with_borrowed_privileges() {
        let p = pair("app_clone", "app").unwrap();
        let source = role(&[("app", false)], &[("role", "app")]);
        let target = role(&[], &[]);
        let master = Ident::from_catalog("master");
        let borrow = [p.clone.clone(), p.base.clone()];
        let plan = plan(&p, &source, Some(&target), &verifier(), &caps(false), Some((&master, &borrow))).unwrap();
        assert_eq!(
            render(&plan),
            [
                "ALTER ROLE \"app\" PASSWORD '<redacted>'",
                "GRANT \"app_clone\" TO \"master\"",
                "GRANT \"app\" TO \"master\"",
                "REASSIGN OWNED BY \"app_clone\" TO \"app\"",
                "REVOKE \"app_clone\" FROM \"master\"",
                "REVOKE \"app\" FROM \"master\"",
            ]
        );
    }

    #[test]
    fn describe_is_sorted_and_complete() {
        let state = role(&[("readers", true)], &[("search_path", "public")]);
        let lines = describe(&state, &caps(false));
        assert!(lines.contains(&"MEMBER OF \"readers\" WITH ADMIN".to_string()));
        assert!(lines.contains(&"SET search_path=public".to_string()));
        assert!(lines.contains(&"NOCREATEDB".to_string()));
        assert!(lines.contains(&"CONNECTION LIMIT -1".to_string()));
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(lines, sorted);
    }

    #[test]
    fn a_thousand_unchanged_memberships_cost_one_statement() {
        let p = pair("app", "app_clone").unwrap();
        let names: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
        let list: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), false)).collect();
        let source = role(&list, &[]);
        let mut with_link = list.clone();
        with_link.push(("app", false));
        let target = role(&with_link, &[("role", "app")]);
        let plan = plan(&p, &source, Some(&target), &verifier(), &caps(false), None).unwrap();
        assert_eq!(plan.statements.len(), 1);
    }
}
