//! include/iterinv.h is what cbindgen makes of this crate now (with cbindgen.toml): a change to
//! the API that was not carried into the committed header fails here. To rewrite the header
//! after such a change: `ITERINV_BLESS=1 cargo test -p iterinv-capi --test header`.

use std::path::Path;

#[test]
fn the_committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    // The crate's sources alone (no `cargo metadata`, so nothing is fetched: works offline).
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen reads the crate");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = dir.join("include/iterinv.h");
    if std::env::var_os("ITERINV_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with capi/src; regenerate it with \
         `ITERINV_BLESS=1 cargo test -p iterinv-capi --test header` and commit it",
        path.display()
    );
}
