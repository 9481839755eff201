//! Whether this machine can run the container backend's tests: `wsd_testengine::build_script`.

fn main() {
    wsd_testengine::build_script();
}
