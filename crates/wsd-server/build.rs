//! Whether this machine can run the test suites' PostgreSQL half (`wsd_testdb::build_script`)
//! and the console's browser tests: compiled in (`cfg(wsd_test_browser)`) where Chromium's
//! WebDriver is installed or `WSD_TEST_REQUIRE_BROWSER=1` asks, so that a missing browser
//! fails them; otherwise ignored, with the reason.

#![allow(clippy::disallowed_methods)]

fn main() {
    wsd_testdb::build_script();
    println!("cargo::rustc-check-cfg=cfg(wsd_test_browser)");
    println!("cargo::rerun-if-env-changed=WSD_TEST_REQUIRE_BROWSER");
    println!("cargo::rerun-if-changed=/usr/bin/chromedriver");
    let required = std::env::var("WSD_TEST_REQUIRE_BROWSER").as_deref() == Ok("1");
    if required || std::path::Path::new("/usr/bin/chromedriver").exists() {
        println!("cargo::rustc-cfg=wsd_test_browser");
    }
}
