//! `include/shmframes.h` is what cbindgen makes of this crate today: regenerated here and
//! compared byte for byte. After changing the ABI, rewrite it with
//! `SHMFRAMES_BLESS=1 cargo test -p shmframes-capi --test header` and commit it.

use std::path::Path;

#[test]
fn the_committed_header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let path = dir.join("include/shmframes.h");
    if std::env::var_os("SHMFRAMES_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write the header");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is out of date with src/capi/src: regenerate it with \
         `SHMFRAMES_BLESS=1 cargo test -p shmframes-capi --test header`, then commit it",
        path.display()
    );
}
