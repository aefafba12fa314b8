//! Gives the shared library the soname it is installed under (`make install-c` installs
//! `libshmframes.so.0` and links `libshmframes.so` to it), so programs linked with
//! `-lshmframes` find it again at run time.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshmframes.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
