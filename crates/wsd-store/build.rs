//! Whether this machine can run the test suites' PostgreSQL half: `wsd_testdb::build_script`;
//! and a rebuild when a migration changes (`sqlx::migrate!` embeds them).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    wsd_testdb::build_script();
}
