//! Gives the shared library the SONAME it is installed under, so that C
//! programs linked against `libshmpipe.so` record `libshmpipe.so.0`.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshmpipe.so.0");
    println!("cargo:rerun-if-changed=build.rs");
}
