//! Whether this machine can run the test suites' PostgreSQL half: `wsd_testdb::build_script`.

fn main() {
    wsd_testdb::build_script();
}
