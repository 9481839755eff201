//! Whether this machine can run the test suites' PostgreSQL half (a server given in
//! `WSD_TEST_DATABASE_URL`, or installed): where it cannot, those tests are compiled as
//! ignored, with the reason, rather than passing without running. `WSD_TEST_REQUIRE_POSTGRES=1`
//! (as CI sets it) always compiles them in, so that a missing server fails them.
#![allow(clippy::disallowed_methods)]

fn main() {
    println!("cargo::rustc-check-cfg=cfg(wsd_test_postgres)");
    println!("cargo::rerun-if-env-changed=WSD_TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=WSD_TEST_REQUIRE_POSTGRES");
    println!("cargo::rerun-if-changed=/usr/lib");
    let required = std::env::var("WSD_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1");
    if required || wsd_testdb::available() {
        println!("cargo::rustc-cfg=wsd_test_postgres");
    }
}
