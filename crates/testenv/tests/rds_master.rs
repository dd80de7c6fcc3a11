//! `rds_master`: the PostgreSQL master is shaped like RDS's (logs in, CREATEDB and CREATEROLE,
//! not a superuser, administers rds_iam), and its secret document is AWS's JSON.

use dbcreds_testenv::{Postgres, ServerOptions, rds_master};

#[tokio::test]
async fn the_postgres_master_is_an_rds_style_master() {
    let server = Postgres::start(ServerOptions::new()).await;
    let password = rds_master::create_postgres_master(&server).await;
    assert!(password.len() >= 24 && password.chars().all(|c| c.is_ascii_alphanumeric()));
    let rows = server
        .query_as(rds_master::POSTGRES_MASTER, &password, "postgres", "SELECT rolsuper::text, rolcreatedb::text, rolcreaterole::text FROM pg_roles WHERE rolname = current_user")
        .await
        .expect("the master logs in over verified TLS");
    assert_eq!(rows, vec![vec![Some("false".to_string()), Some("true".to_string()), Some("true".to_string())]]);
    let admin = server
        .admin_query_strings("SELECT m.admin_option::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = 'rds_iam' AND u.rolname = 'master'")
        .await;
    assert_eq!(admin, vec![vec![Some("true".to_string())]], "the master administers rds_iam");
}

#[test]
fn the_master_secret_is_awss_json() {
    let postgres = rds_master::master_secret_document("postgres", "db.example.com", 5432, "master", "pw-1");
    assert_eq!(postgres.to_string(), r#"{"engine":"postgres","host":"db.example.com","port":5432,"username":"master","password":"pw-1","dbname":"postgres"}"#);
    let mysql = rds_master::master_secret_document("mysql", "db.example.com", 3306, "admin", "pw-2");
    assert_eq!(mysql.to_string(), r#"{"engine":"mysql","host":"db.example.com","port":3306,"username":"admin","password":"pw-2"}"#);
}
