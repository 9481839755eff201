//! Whether this machine can run the container tests: `wsd_testengine::build_script`.

fn main() {
    wsd_testengine::build_script();
}
