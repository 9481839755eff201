//! The shipped registry loads, and holds the providers and runtimes wsd promises.

use wsd_core::Registry;

#[test]
fn embedded_registry_is_valid() {
    if let Err(e) = Registry::embedded() {
        panic!("{e}");
    }
}
