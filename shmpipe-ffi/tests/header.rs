//! The checked-in `include/shmpipe.h` must be what cbindgen generates from
//! the current source. Regenerate it with
//! `SHMPIPE_BLESS=1 cargo test -p shmpipe-ffi --test header` (or
//! `make -C shmpipe-ffi header`).

use std::path::Path;

#[test]
fn checked_in_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = dir.join("include/shmpipe.h");
    if std::env::var_os("SHMPIPE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing include/shmpipe.h");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    if checked_in != generated {
        let fresh = dir.join("../target/shmpipe.h.generated");
        let _ = std::fs::write(&fresh, &generated);
        panic!(
            "include/shmpipe.h is stale (the generated header is in {}): regenerate it with \
             `make -C shmpipe-ffi header` (or `SHMPIPE_BLESS=1 cargo test -p shmpipe-ffi \
             --test header`) and commit it",
            fresh.display()
        );
    }
}
